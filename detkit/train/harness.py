"""The training harness both trainers share (detector and classifier): the run folder's owner and
leftovers, the checkpoint layout, the one-commit epoch end, the NaN policy, the progress lines of a log
file and the thread policy's pin. The options each trainer declares once live in :mod:`detkit.train.options`.

Run folder. :class:`RunFolder` is held for the whole run: a lock file naming the owner's pid (a second
trainer gets a one-line error; a lock left by a killed process is taken over with a warning), the temp
files of an interrupted run removed, and a folder holding a run refused unless the call resumes it or
says ``exist_ok`` (which deletes the previous run's files, and says which). A new run refused before its
first commit (unusable data or options, exit 2) removes what it wrote and the folders it created, so it
leaves no empty run folder behind; a NaN stop keeps its run.json.

One-commit epoch end. ``last.pt`` is the run's state of record: besides model, optimizer, scheduler, EMA
and RNG states it carries the metric rows (``history``) and the best epoch (``best``). An epoch ends by
writing it under a temp name, fsyncing and renaming it over ``last.pt`` (the commit); ``best.pt``,
``metrics.csv`` and ``summary.json`` are then rebuilt from it. A kill before the rename leaves the
previous epoch's complete state (its temp file is removed by the next run); a kill after it leaves side
files that :meth:`Checkpoints.repair` rebuilds on the next ``--resume`` before anything else.

NaN policy (both trainers): the step that sees a non-finite loss or gradient is not applied; training stops
with :class:`Diverged` (exit 1), ``last.pt`` keeps the last committed epoch and ``summary.json`` says
``status: "diverged"``."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detkit.console import info, progress_enabled, warn
from detkit.errors import DetkitError, InputError
from detkit.io import atomic_write, check_out_folder, torch_load
from detkit.train.threads import apply_thread_policy

# ------------------------------------------------------------------------------------------ run folder
LOCK_NAME = ".detkit.lock"
# temp names of detkit.io: ".<name>.<8 random>.tmp" (atomic_write) and ".<stem>.<8 random><suffix>"
# (atomic_path)
_LEFTOVER = re.compile(r"^\.[^/]+\.[A-Za-z0-9_]{8}(\.tmp|\.pt|\.png|\.csv|\.json)$")


class RunFolder:
    """The run folder, owned for the life of the ``with`` block (only rank 0 under torchrun takes it).

    Args:
        path: the run folder (created).
        files: the files a run of this trainer writes (what ``exist_ok`` deletes).
        resume: the call continues the run in the folder.
        exist_ok: start over in a folder holding a run.
        main: this process writes (rank 0).
    """

    def __init__(
        self,
        path: str | Path,
        files: Sequence[str],
        *,
        resume: bool = False,
        exist_ok: bool = False,
        main: bool = True,
    ):
        self.path, self.files, self.resume, self.exist_ok, self.main = (
            Path(path),
            tuple(files),
            resume,
            exist_ok,
            main,
        )
        self._fd: int | None = None
        self._created: list[Path] = []  # the folders this call made, deepest first

    def __enter__(self) -> RunFolder:  # noqa: PYI034
        check_out_folder(self.path, "a run folder")
        if not self.main:
            return self
        if self.resume and not (self.path / "last.pt").is_file():
            raise InputError(self.path / "last.pt", None, "checkpoint not found")
        p = self.path.absolute()
        while not p.exists():
            self._created.append(p)
            p = p.parent
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self.clean_leftovers()
            if not self.resume:
                self._claim()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.main:
            self._unlock()
            refused = isinstance(exc, DetkitError) and exc.exit_code == 2  # not a NaN stop (exit 1)
            if refused and self._created and not (self.path / "last.pt").exists():
                self._discard()

    def _discard(self) -> None:
        """Remove a new run folder refused before its first commit: the run's files, then the folders
        this call created (each only when empty)."""
        for n in self.files:
            with contextlib.suppress(OSError):
                (self.path / n).unlink()
        for d in self._created:
            try:
                d.rmdir()
            except OSError:  # something else is in it: keep it and its parents
                break

    def _lock(self) -> None:
        import fcntl  # lazy: POSIX only; nothing else here needs it

        path = self.path / LOCK_NAME
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise DetkitError(
                    f"{self.path}: in use by another detkit trainer (pid {holder}); wait for it "
                    f"to end or pick another run folder"
                ) from None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one
        stale = os.read(fd, 64).decode(errors="replace").strip()
        if stale:  # the kernel frees a flock when its process dies; the pid it wrote stays
            warn(f"{self.path}: taking over the lock of pid {stale}, which ended without releasing it")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / LOCK_NAME)
            os.close(self._fd)
            self._fd = None

    def clean_leftovers(self) -> list[str]:
        """Remove the temp files an interrupted run left (only ever called by the lock's holder)."""
        gone = []
        for p in sorted(self.path.iterdir()):
            if p.is_file() and _LEFTOVER.match(p.name):
                p.unlink()
                gone.append(p.name)
        if gone:
            info(f"{self.path}: removed {len(gone)} temp file(s) of an interrupted run: {', '.join(gone)}")
        return gone

    def _claim(self) -> None:
        present = [n for n in self.files if (self.path / n).exists()]
        if "last.pt" not in present and not (self.exist_ok and present):
            return
        if not self.exist_ok:
            raise InputError(
                self.path,
                None,
                "already holds a run (last.pt); resume it, start over with exist_ok=True, or pick another "
                "out folder",
                flags={
                    "resume it,": f"continue it with --resume {self.path},",
                    **EXIST_OK,
                    "another out folder": "another --out",
                },
            )
        for n in present:
            (self.path / n).unlink()
        warn(f"{self.path}: exist_ok=True: deleted the previous run's {', '.join(present)}", flags=EXIST_OK)


EXIST_OK = {"exist_ok=True": "--exist-ok"}  # the CLI names the flag (detkit.errors.cli_text)


def run_folder(run: str | Path) -> Path:
    """The run folder ``--resume`` names: the folder itself, or the folder of its ``last.pt``."""
    p = Path(run)
    return p.parent if p.name == "last.pt" and not p.is_dir() else p


def say_nothing_to_do(path: Path, done: int, epochs: int) -> None:
    """The line of a resume that finds the run trained to its ``epochs`` (both trainers)."""
    info(
        f"{path}: already trained {done} of {epochs} epochs; nothing to do "
        f"(epochs=N with N > {done} goes on)",
        flags={"epochs=N": "--epochs N"},
    )


# ------------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` under a temp name, fsync, rename over ``path``, fsync the folder."""
    import torch  # lazy: this module loads without torch (detkit report reads LOCK_NAME)

    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    with contextlib.suppress(OSError):  # the rename itself reaches the disk
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_checkpoint(
    path: str | Path, kind: str, need: Sequence[str], hint: str = "", flags: dict[str, str] | None = None
) -> dict[str, Any]:
    """A detkit checkpoint, loaded with ``weights_only`` (a foreign file can run no code).

    Args:
        path: the file.
        kind: ``yolo`` or ``classify``, for the message.
        need: keys it must hold; another tool's file is refused by name.
        hint: appended to the message about missing keys.
        flags: the CLI's words for the hint's (:class:`detkit.errors.DetkitError`).
    """

    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "checkpoint not found")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise InputError(path, None, "not a PyTorch checkpoint (torch.save file)")
    with zipfile.ZipFile(path) as z:  # an exported model: torch.load would warn, then fail at length
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist()):
            raise InputError(path, None, f"a TorchScript model (an export), not a detkit {kind} checkpoint")
    ckpt = torch_load(path)
    missing = [k for k in need if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        what = f"no {missing[0]}" if len(missing) == 1 else f"missing {', '.join(missing[:3])}"
        raise InputError(
            path,
            None,
            f"not a detkit {kind} checkpoint ({what}){hint if isinstance(ckpt, dict) else ''}",
            flags=flags,
        )
    return ckpt


# the keys every detkit training checkpoint (last.pt) holds, besides each trainer's own
STATE_KEYS = ("epoch", "model", "optimizer", "scheduler", "ema", "rng", "history", "best")


class Checkpoints:
    """The one-commit epoch end and the side files rebuilt from ``last.pt``.

    Args:
        run: the run folder.
        columns: metrics.csv columns (rows come from ``state["history"]``).
        best_state: ``state -> what best.pt holds`` (called when the state is the best epoch).
        summary: ``(state, status) -> None``: writes summary.json (through detkit.train.runs.write_summary).
        plots: ``(state) -> None``: writes the curves (end of a call and repair only: they cost seconds).
        plot_files: what ``plots`` writes (repair redraws when one is missing).
        fmt: ``(column, value) -> str`` for metrics.csv cells.
    """

    def __init__(
        self,
        run: Path,
        columns: Sequence[str],
        best_state: Callable[[dict], dict],
        summary: Callable[[dict, str], None],
        plots: Callable[[dict], None] | None = None,
        plot_files: Sequence[str] = (),
        fmt: Callable[[str, Any], str] | None = None,
    ):
        self.run, self.columns, self.best_state, self.summary = run, tuple(columns), best_state, summary
        self.plots, self.plot_files = plots, tuple(plot_files)
        self.fmt = fmt or (lambda k, v: "" if v is None else str(v))

    def commit(self, state: dict[str, Any], status: str = "incomplete") -> None:
        """End an epoch: last.pt (the commit), then best.pt, metrics.csv and summary.json from it."""
        save_checkpoint(self.run / "last.pt", state)
        if _is_best(state):
            save_checkpoint(self.run / "best.pt", self.best_state(state))
        self.write_metrics(state["history"])
        self.summary(state, status)

    def finish(self, state: dict[str, Any] | None, status: str) -> None:
        """The end of a call: the final status and the curves."""
        if state is None or not state["history"]:
            return
        if self.plots is not None:
            self.plots(state)
        self.summary(state, status)

    def repair(self, state: dict[str, Any], finished: bool) -> list[str]:
        """Rebuild what a kill after the commit left stale or missing; returns the files rebuilt."""
        import torch  # lazy: this module loads without torch (detkit report reads LOCK_NAME)

        done = []
        best = self.run / "best.pt"
        if _is_best(state):
            try:
                kept = torch.load(best, map_location="cpu", weights_only=True)
                stale = (kept.get("epoch"), kept.get("epoch_step") or 0) != (
                    state["epoch"],
                    state.get("epoch_step") or 0,
                )
            except Exception:  # noqa: BLE001 - missing or torn: rebuild
                stale = True
            if stale:
                save_checkpoint(best, self.best_state(state))
                done.append("best.pt")
        if _read_csv(self.run / "metrics.csv") != [self._cells(r) for r in state["history"]]:
            self.write_metrics(state["history"])
            done.append("metrics.csv")
        plots_missing = not all((self.run / p).is_file() for p in self.plot_files)
        if finished and self.plots is not None and state["history"] and plots_missing:
            self.plots(state)
            done.extend(self.plot_files)
        if not (self.run / "summary.json").is_file() or (finished and _status(self.run) != "done"):
            self.summary(state, "done" if finished else "incomplete")
            done.append("summary.json")
        if done:
            info(f"{self.run}: rebuilt {', '.join(done)} from last.pt (epoch {state['epoch']})")
        return done

    def _cells(self, row: dict[str, Any]) -> list[str]:
        return [self.fmt(k, row.get(k)) for k in self.columns]

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        with atomic_write(self.run / "metrics.csv", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(self.columns)
            w.writerows(self._cells(r) for r in history)


def _position(state: dict[str, Any]) -> tuple[int, int]:
    """(epoch being trained or done, batches into it): a --max-steps stop inside an epoch has
    epoch_step > 0."""
    step = state.get("epoch_step") or 0
    return state["epoch"] + (1 if step else 0), step


def _is_best(state: dict[str, Any]) -> bool:
    """This state is the best evaluation (``best`` names its epoch, and its batch for a part epoch)."""
    best = state.get("best") or {}
    return best.get("epoch") is not None and (best["epoch"], best.get("epoch_step", 0)) == _position(state)


def _read_csv(path: Path) -> list[list[str]] | None:
    try:
        with open(path, newline="") as f:
            return list(csv.reader(f))[1:]
    except OSError:
        return None


def _status(run: Path) -> str | None:
    try:
        return json.loads((run / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------ NaN policy
class Diverged(DetkitError):
    """Training stopped at a non-finite loss or gradient (exit 1); ``result`` is what the call returns."""

    def __init__(self, message: str, result: dict[str, Any] | None = None):
        super().__init__(message, exit_code=1)
        self.result = result


def diverged(run: Path, epoch: int, what: str, result: dict[str, Any] | None = None) -> Diverged:
    """The one NaN message of both trainers (a warning line, then the error the CLI prints)."""
    warn(f"non-finite training loss in epoch {epoch}: {what}")
    last = run / "last.pt"
    kept = f"last good checkpoint kept: {last}" if last.exists() else "no checkpoint was written yet"
    return Diverged(f"training stopped in epoch {epoch}: {what}; {kept}", result)


# ------------------------------------------------------------------------------------------ progress
class ProgressLog:
    """A progress line every ``every`` seconds when stderr is not a terminal (a log file or CI), where
    the rich bar is silent; nothing on a terminal.

    Args:
        every: seconds between lines (0: every call).
    """

    def __init__(self, every: float = 30.0):
        self.every, self.on = every, not progress_enabled()
        self.t0 = self.last = time.monotonic()

    def __call__(self, make_line: Callable[[], str]) -> None:
        now = time.monotonic()
        if self.on and now - self.last >= self.every:
            self.last = now
            info(f"[{_clock(now - self.t0)}] {make_line()}")


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def apply_threads(cfg: Any, workers: int) -> dict[str, Any]:
    """Apply the CPU thread policy of :mod:`detkit.train.threads` and pin ``cfg.threads`` to its choice, so a
    ``--resume`` runs with the same count (the order of floating-point reductions, hence the weights,
    depends on it; the policy's own choice moves with the machine's load). Returns the policy's record.
    """
    policy = apply_thread_policy(cfg.threads, workers)
    cfg.threads = policy["threads"]
    return policy
