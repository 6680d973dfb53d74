"""Terminal output: data on stdout, messages and progress on stderr.

``err`` is the stderr console every command uses for messages; :func:`progress` gives a rich progress bar that
is silent when stderr is not a terminal; :func:`emit_json` prints the one JSON document a ``--json`` run may
print."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress

from detkit.io import SCHEMA_VERSION, to_json

err = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True)
out = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True)


def progress_enabled() -> bool:
    """Progress bars only when stderr is an interactive terminal (not in CI logs or pipes)."""
    return sys.stderr.isatty() and not os.environ.get("DETKIT_NO_PROGRESS")


def progress(transient: bool = True) -> Progress:
    """A rich progress bar on stderr; disabled (a no-op) when stderr is not a terminal."""
    from rich.progress import (  # here: imports a command that shows no bar need not pay
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err,
        transient=transient,
        disable=not progress_enabled(),
    )


def emit_json(doc: dict[str, Any]) -> None:
    """Print exactly one JSON document on stdout, with ``schema_version`` first."""
    body = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in doc.items() if k != "schema_version"}}
    sys.stdout.write(to_json(body))
    sys.stdout.write("\n")
    sys.stdout.flush()


def info(message: str, *, markup: bool = False) -> None:
    """A message for the user, on stderr.

    Args:
        message: plain text; paths with brackets print as they are unless ``markup`` is set.
        markup: read rich markup (``[green]ok[/green]``) in ``message``; escape any paths in it.
    """
    err.print(message, markup=markup)


def warn(message: str) -> None:
    """A warning on stderr: ``warning: message`` (message is plain text)."""
    err.print(Text.assemble(("warning:", "yellow"), " ", message))
