"""`detkit report ...` (thin: parse, call, print)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from detkit.console import emit_json, info
from detkit.report.render import write_report

# `detkit report DIR... -o FILE` is a single command, so the sub-app's callback is the command itself;
# interspersed args let `-o` come after the folders.
app = typer.Typer(
    no_args_is_help=True,
    invoke_without_command=True,
    subcommand_metavar="",
    context_settings={"allow_interspersed_args": True},
    epilog="Example: detkit report runs/ -o report.html   (or -o report.md: images go to report_files/)",
)


@app.callback(invoke_without_command=True)
def report(
    dirs: Annotated[
        list[Path], typer.Argument(metavar="DIR", help="Run/output folders (searched for summary.json).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="report.html (self-contained) or report.md.")
    ],
    title: Annotated[str, typer.Option(help="Heading of the report.")] = "detkit report",
    json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document describing the report.")
    ] = False,
) -> None:
    """Render every summary.json under DIR... into one HTML or Markdown report.

    Example: detkit report runs/ -o report.html
    """
    result = write_report(dirs, output, title=title)
    if json:
        emit_json(result)
        return
    for s in result["sections"]:
        info(
            f"  {s['heading']:<24} {s['folder']}"
            + "".join(f"\n    [yellow]warning:[/yellow] {n}" for n in s["notes"])
        )
    print(result["report"])
