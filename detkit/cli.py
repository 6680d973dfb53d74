"""detkit's command line: one Typer app with a sub-app per area.

This module only wires sub-apps together and turns errors into one line + an exit code: 0 ok, 1 findings or a
missed threshold, 2 usage errors or unusable input. Heavy libraries (torch, matplotlib, pycocotools) are
imported inside the commands that use them, so ``detkit --help`` and ``detkit coco ...`` start fast."""

from __future__ import annotations

import gc
import os
import sys

import typer

from detkit import __version__
from detkit.console import cli_wording, out
from detkit.errors import DetkitError

app = typer.Typer(
    name="detkit",
    help="Object-detection datasets, anchor boxes and training from the terminal.\n\n"
    "Example: detkit demo out/  (generates data, runs every tool, writes out/report.html)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"detkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """detkit: object-detection datasets, anchors and training."""


# sub-app name -> (modules that register its commands on one ``app``, in --help order; help); "demo" is a
# command. Each is imported only when a command line names it (``detkit coco eval`` imports neither torch
# nor the trainers), all of them for help.
_COCO = (
    "detkit.datasets.cli.inspect",
    "detkit.datasets.cli.convert",
    "detkit.evaluation.cli",
    "detkit.datasets.cli.ops",
)
_PARTS = {
    "coco": (_COCO, "Inspect, validate, count and convert annotation files."),
    "anchors": (("detkit.anchors.cli",), "IoU k-means anchor boxes, sweeps and plots."),
    "yolo": (("detkit.yolo.cli",), "YOLOv2-style detector: train, eval (COCO mAP), predict."),
    "classify": (("detkit.classify.cli",), "ResNet classifiers on Tiny ImageNet layouts."),
    "data": (("detkit.data.cli",), "Generate synthetic data sets (no download needed)."),
    "report": (("detkit.report.cli",), "HTML / Markdown reports from run folders."),
    "demo": (("detkit.demo.run",), ""),
}
_registered: set[str] = set()


def _register(names: set[str] | None = None) -> None:
    """Add the named sub-apps (default: all) that are not there yet, keeping ``_PARTS``' order for help."""
    import importlib

    for name, (modules, help_) in _PARTS.items():
        if name in _registered or (names is not None and name not in names):
            continue
        _registered.add(name)
        for module in modules:
            mod = importlib.import_module(module)
        if name == "demo":  # the demo runs the other commands and reads their options: all registered
            app.command("demo")(mod.demo_command(mod.Runner(full_app(), lambda argv: run(argv))))
        else:
            app.add_typer(mod.app, name=name, help=help_)
    order = list(_PARTS)
    app.registered_groups.sort(key=lambda g: order.index(g.name))


def full_app() -> typer.Typer:
    """The app with every sub-command registered (what ``detkit --help`` lists; the demo reads its
    options)."""
    _register()
    return app


def _parts_named(argv: list[str]) -> set[str] | None:
    """The sub-app ``argv`` runs (its first word that is not an option), or None (all) when it names none."""
    word = next((w for w in argv if not w.startswith("-")), None)
    return {word} if word in _PARTS else None


def _stdout_closed() -> bool:
    """True once a write met a closed stdout pipe: click then wraps sys.stdout to swallow flush errors,
    and rich's ``Console.on_broken_pipe`` sets the console quiet; both then exit 1."""

    return type(sys.stdout).__name__ == "PacifyFlushWrapper" or out.quiet


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so Python's exit-time flush of a closed pipe prints nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
    except (OSError, AttributeError, ValueError):  # no real stdout (tests capture it): nothing to silence
        pass


def _os_error_line(exc: OSError) -> str:
    """``path: reason`` for an OSError that escaped a command (permission denied, disk full...)."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {reason}" if where != "" else reason


def run(argv: list[str] | None = None, freeze: bool = False) -> int:
    """Run the CLI on ``argv`` and return the exit code (used by ``main`` and by the tests).

    A closed stdout pipe (``detkit coco inspect X | head -1``) is exit 0 without a word, as for ``cat``; an
    OSError that escaped a command (a permission denied, a full disk) is one line, exit 2. ``freeze``
    (``main``: the process is the command's own) moves what importing made — typer, rich, numpy, the
    sub-commands: ~100k objects that live as long as the process — out of the garbage collector's reach, so
    that a full collection no longer walks it."""
    global _broken_pipe
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _register(_parts_named(argv))
        if freeze:
            gc.freeze()
        with cli_wording():  # library warnings and info lines name the flags (detkit.console.warn)
            app(args=argv, prog_name="detkit")  # standalone: usage errors print and exit 2
    except SystemExit as exc:
        if _stdout_closed():  # click turned a BrokenPipeError into exit 1
            _broken_pipe = True
            return 0
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except DetkitError as exc:
        print(f"detkit: error: {exc.cli_message()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("detkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _broken_pipe = True
        return 0
    except OSError as exc:
        print(f"detkit: error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__name__ != "DecompressionBombError":  # PIL's, raised by any header read
            raise
        print(f"detkit: error: an image header claims too many pixels to decode ({exc})", file=sys.stderr)
        return 2
    return 0


_broken_pipe = False


def main() -> None:
    code = run(sys.argv[1:], freeze=True)
    if _broken_pipe:
        _silence_stdout()
    # The process ends here: spare the interpreter's exit-time garbage collection a walk over every object
    # still alive (docs/benchmarks.md, coco eval). atexit handlers still run and objects are still freed
    # by reference counts; only objects held in reference cycles are left to the OS, which Python does not
    # promise to finalize at exit anyway.
    gc.freeze()
    sys.exit(code)
