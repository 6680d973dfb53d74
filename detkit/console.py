"""Terminal output: data on stdout, messages and progress on stderr.

``err`` is the stderr console every command uses for messages; :func:`progress` gives a rich progress
bar that is silent when stderr is not a terminal; :func:`emit_json` prints the one JSON document a
``--json`` run may print.

The one rule for text from data (file names, class names, paths): it is never read as markup. Both
consoles have rich's emoji codes off (``a:train:b.jpg`` stays as it is, with or without colour), plain
messages are printed with ``markup=False``, and any user string placed inside markup or a table cell
goes through :func:`esc`.

Library text names values and keyword arguments, the CLI names flags: :func:`warn` and :func:`info` take
the same ``flags`` map as :class:`detkit.errors.DetkitError` (``{"exist_ok=True": "--exist-ok"}``) and
apply it while a CLI command runs (:func:`cli_wording`, entered by :func:`detkit.cli.run`), so a Python
caller reads ``exist_ok=True`` where the command line user reads ``--exist-ok``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress

from detkit.errors import cli_text
from detkit.io import SCHEMA_VERSION

_NO_COLOR = bool(os.environ.get("NO_COLOR"))
err = Console(stderr=True, no_color=_NO_COLOR, highlight=False, soft_wrap=True, emoji=False)
out = Console(no_color=_NO_COLOR, highlight=False, soft_wrap=True, emoji=False)


_cli_wording = False  # a CLI command is running: messages name its flags (see cli_wording)


@contextlib.contextmanager
def cli_wording() -> Iterator[None]:
    """While inside: :func:`warn` and :func:`info` apply their ``flags`` (the CLI's words). Process-wide,
    so the lines a command's helper threads print read the same; nested uses restore the outer state."""
    global _cli_wording
    outer, _cli_wording = _cli_wording, True
    try:
        yield
    finally:
        _cli_wording = outer


def worded(message: str, flags: Mapping[str, str] | None = None) -> str:
    """``message`` as its reader sees it: the library's words, or under :func:`cli_wording` with each
    phrase of ``flags`` replaced by the CLI's (:func:`detkit.errors.cli_text`)."""
    return cli_text(message, flags) if _cli_wording else message


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


def info(message: str, *, markup: bool = False, flags: Mapping[str, str] | None = None) -> None:
    """A message for the user, on stderr.

    Args:
        message: plain text; paths with brackets print as they are unless ``markup`` is set.
        markup: read rich markup (``[green]ok[/green]``) in ``message``; escape any paths in it.
        flags: library phrase -> the CLI's, applied under :func:`cli_wording` (see :func:`worded`).
    """
    err.print(worded(message, flags), markup=markup)


def warn(message: str, flags: Mapping[str, str] | None = None) -> None:
    """A warning on stderr: ``warning: message`` (message is plain text; ``flags`` as for :func:`info`)."""
    err.print(Text.assemble(("warning:", "yellow"), " ", worded(message, flags)))
