"""`detkit report ...` and `detkit demo` (thin: parse, call, print)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


def demo() -> None:
    """Generate data and run every detkit tool on it (to be implemented)."""
    raise typer.Exit(0)
