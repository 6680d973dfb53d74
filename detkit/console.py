"""Terminal output: data on stdout, messages and progress on stderr.

``err`` is the stderr console every command uses for messages; :func:`progress` gives a rich progress
bar that is silent when stderr is not a terminal; :func:`emit_json` prints the one JSON document a
``--json`` run may print.

The one rule for text from data (file names, class names, paths): it is never read as markup. Both
consoles have rich's emoji codes off (``a:train:b.jpg`` stays as it is, with or without colour), plain
messages are printed with ``markup=False``, and any user string placed inside markup or a table cell
goes through :func:`esc`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress

from detkit.io import SCHEMA_VERSION

_NO_COLOR = bool(os.environ.get("NO_COLOR"))
err = Console(stderr=True, no_color=_NO_COLOR, highlight=False, soft_wrap=True, emoji=False)
out = Console(no_color=_NO_COLOR, highlight=False, soft_wrap=True, emoji=False)


def esc(value: object) -> str:
    """``value`` as text that rich prints literally inside markup or a table cell (``[person]`` stays
    ``[person]``); emoji codes need no escaping because both consoles have them off."""
    from rich.markup import escape

    return escape(str(value))


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


def _enc_hook(obj: Any) -> Any:
    """What msgspec cannot encode itself: numpy scalars and arrays, paths; anything else as text."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars (a scalar's tolist() is its Python value)
        return obj.tolist()
    return str(obj)


def emit_json(doc: dict[str, Any]) -> None:
    """Print exactly one JSON document on stdout: ``schema_version`` first, indent 2, NaN and inf as
    ``null``, non-ASCII text as UTF-8.

    Encoded by msgspec: several times faster than ``json.dumps`` on the many numbers of curves and
    matrices (``coco eval --json``). The values parse the same as :func:`detkit.io.to_json`'s; only
    the spelling of some floats differs (``0.00001`` for ``1e-05``).
    """
    import msgspec

    body = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in doc.items() if k != "schema_version"}}
    raw = msgspec.json.encode(body, enc_hook=_enc_hook)
    sys.stdout.write(msgspec.json.format(raw, indent=2).decode())
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
