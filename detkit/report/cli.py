"""`detkit report ...` and `detkit demo` (thin: parse, call, print)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from detkit.console import emit_json, info

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
    from detkit.report.render import write_report

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


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


def demo(
    out: Annotated[Path, typer.Argument(help="Output folder (data/, runs/, logs/, report.html).")] = Path(
        "detkit-demo"
    ),
    device: Annotated[
        Device, typer.Option(help="cpu: a 1-3 minute tour; cuda: longer, real training.")
    ] = Device.cpu,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smallest settings (CI smoke test, under a minute).")
    ] = False,
    seed: Annotated[
        int, typer.Option(help="Seed for every sampling step (same seed, same data and runs).")
    ] = 0,
    json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document with the steps and report paths.")
    ] = False,
) -> None:
    """Generate data and run every detkit tool on it, then write OUT/report.html and OUT/report.md.

    Needs no download: it generates a synthetic shapes detection set and a Tiny-ImageNet-layout set.
    Then coco inspect/validate/classes, the anchor sweep k=3..6, a short YOLO and a classifier training + eval.
    Every step runs through the CLI; exit 1 if any step failed (the others still run).

    Example: detkit demo out/ --device cpu
    """
    from detkit.report.demo import run_demo

    result = run_demo(out, device=device.value, quick=quick, seed=seed)
    if json:
        emit_json(result)
    else:
        failed = result["failed"]
        info(
            f"demo finished in {result['seconds']:.0f} s"
            + (f", [red]{len(failed)} step(s) failed[/red]: {', '.join(failed)}" if failed else "")
        )
        for key in ("report", "markdown"):
            if result[key]:
                print(result[key])
    if result["failed"]:
        raise typer.Exit(1)
