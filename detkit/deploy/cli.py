"""What the two export commands (``detkit yolo export``, ``detkit classify export``) share: their format,
batch and JSON options, declared once, and the line or JSON document that reports an export."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from detkit.console import emit_json, info

FormatOpt = Annotated[
    str | None, typer.Option("--format", help="onnx or torchscript (default: from OUT's suffix).")
]
DynamicOpt = Annotated[bool, typer.Option("--dynamic", help="Any batch size (else --batch).")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, help="The fixed batch size.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def report_export(doc: dict[str, Any], kind: str, json_out: bool) -> None:
    """Print what an export wrote: one JSON document of ``kind`` on stdout, or one line on stderr.

    Args:
        doc: what the export returned (out, format, img_size, batch, bytes, max_abs_diff).
        kind: the document's kind, ``yolo.export`` or ``classify.export``.
    """
    if json_out:
        emit_json({"kind": kind, **doc})
        return
    d = doc["max_abs_diff"]
    diff = "not checked (onnxruntime not installed)" if d is None else f"{d:.2g}"
    info(
        f"wrote {doc['out']} ({doc['format']}, {doc['img_size']} px, batch {doc['batch']}, "
        f"{doc['bytes'] / 1e6:.1f} MB); largest difference to PyTorch {diff}"
    )
