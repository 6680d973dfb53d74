"""The machinery that runs ``detkit demo``'s steps: a :class:`Step` (one command line and the files it must
write), the :class:`Runner` that runs command lines and knows their options, the check of a plan against
the commands' real options, and :func:`run_step`, which runs one step in-process with its own log.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detkit.errors import DetkitError
from detkit.io import atomic_write

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@dataclass
class Step:
    """One detkit command line (or, with ``action``, a function of the demo's own) and what it must write."""

    name: str
    argv: list[str]
    expect: list[Path] = field(default_factory=list)  # files the step must leave behind
    ok_codes: tuple[int, ...] = (0,)
    action: Callable[[], None] | None = None  # a demo-side step (the ground-truth gallery), not a command


class Runner:
    """Runs detkit command lines for the demo and knows their options.

    Args:
        app: the Typer app (its Click commands are read for option names).
        run: ``argv -> exit code`` (``detkit.cli.run``: one-line errors, exit codes).
    """

    def __init__(self, app: Any, run: Callable[[list[str]], int]):
        self.app, self.run = app, run

    def __call__(self, argv: list[str]) -> int:
        return self.run(argv)

    def options(self, argv: list[str]) -> set[str] | None:
        """Option names (``--x``, ``-x``) of the command ``argv`` starts with; None if there is none."""
        import typer

        cmd: Any = typer.main.get_command(self.app)
        for word in argv:
            sub = getattr(cmd, "commands", {}).get(word)
            if sub is None:
                break
            cmd = sub
        if hasattr(cmd, "commands"):  # still a group: the command does not exist
            return None
        return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def check_plan(steps: list[Step], runner: Runner) -> None:
    """Raise DetkitError naming the first step whose command or option does not exist."""
    for step in steps:
        if step.action is not None:
            continue
        opts = runner.options(step.argv)
        words = [w for w in step.argv if not w.startswith("-")][:2]
        if opts is None:
            raise DetkitError(f"demo step {step.name!r}: `detkit {' '.join(words)}` is not a detkit command")
        unknown = [
            w.split("=", 1)[0] for w in step.argv if w.startswith("-") and w.split("=", 1)[0] not in opts
        ]
        if unknown:
            raise DetkitError(
                f"demo step {step.name!r} passes {', '.join(unknown)}, which `detkit {' '.join(words)}` does "
                "not have (renamed or removed?): update detkit/demo/run.py"
            )


@dataclass
class StepResult:
    name: str
    command: str
    code: int
    seconds: float
    message: str
    log: str
    cpu_seconds: float = (
        0.0  # this process's CPU time (all threads) plus its finished children's (loader workers)
    )

    @property
    def ok(self) -> bool:
        return not self.message


class _Tee(io.TextIOBase):
    """Writes to the real stream and keeps a copy; looks like the real stream (tty, size) to rich."""

    def __init__(self, real: Any):
        self.real, self.copy, self.owner = real, io.StringIO(), threading.current_thread()

    def write(self, s: str) -> int:
        self.real.write(s)
        if threading.current_thread() is self.owner:  # not the progress bars' refresh threads
            self.copy.write(s)
        return len(s)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")


def problem(stderr: str) -> str:
    """The line of a step's stderr that says what went wrong (detkit's one-line error, else a usage error)."""
    lines = [ln.strip(" \t\u2502\u256d\u256e\u2570\u256f\u2500") for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Try '", "Usage:", "Error"))]
    return next((ln for ln in reversed(lines) if ln.startswith("detkit: error")), lines[-1] if lines else "")


def cpu_time() -> float:
    """CPU seconds used so far by this process, all its threads (not its loader workers, which run beside
    it on the other core): on 2 idle cores a step on one torch thread takes about this long, whatever
    else the machine runs while it is measured."""
    return time.process_time()


def _call(action: Callable[[], None]) -> int:
    try:
        action()
    except DetkitError as exc:
        print(f"detkit: error: {exc.cli_message()}", file=sys.stderr)
        return exc.exit_code
    return 0


def run_step(step: Step, log: Path, runner: Callable[[list[str]], int]) -> StepResult:
    """Run one step in-process: stdout goes to its log, stderr to the terminal and its log.

    Args:
        step: the command line and what it must produce.
        log: the step's log file.
        runner: ``argv -> exit code`` (the :class:`Runner`; ignored by a step with an ``action``).
    """
    argv = list(step.argv)
    command = "detkit " + shlex.join(argv) if step.action is None else f"(demo) {step.name}"
    # Under a live progress bar sys.stderr is rich's proxy, which prints through the console, whose file
    # would be this tee again: wrap the real stream instead, or every write loops forever.
    stdout, tee = io.StringIO(), _Tee(getattr(sys.stderr, "rich_proxied_file", sys.stderr))
    saved_argv, start, cpu0, code, crash = sys.argv, time.perf_counter(), cpu_time(), 2, ""
    sys.argv = ["detkit", *argv]  # so run.json / summary.json record this step's own command line
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(tee):
            code = runner(argv) if step.action is None else _call(step.action)
    except Exception as exc:  # noqa: BLE001 - a bug in a step must not end the demo
        crash = f"crashed: {type(exc).__name__}: {exc}"
        tee.copy.write(traceback.format_exc())
    finally:
        sys.argv = saved_argv
    seconds, cpu = time.perf_counter() - start, cpu_time() - cpu0
    message = crash
    if not message and code not in step.ok_codes:
        last = problem(_ANSI.sub("", tee.copy.getvalue()))
        message = f"exit {code}" + (f": {last}" if last else "")
    if not message and (missing := [str(p) for p in step.expect if not p.exists()]):
        message = f"exit {code} but did not write {', '.join(missing)}"
    with atomic_write(log) as f:
        f.write(
            f"$ {command}\n# exit {code} in {seconds:.1f} s ({cpu:.1f} s of CPU)\n\n"
            f"## stdout\n{_ANSI.sub('', stdout.getvalue())}\n## "
            f"stderr\n{_ANSI.sub('', tee.copy.getvalue())}\n"
        )
    return StepResult(step.name, command, code, seconds, message, str(log), cpu)
