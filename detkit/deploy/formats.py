"""The export formats and the one rule that names a file's format by its suffix (the runtime picks the backend
by it). Plain Python: the export commands check their options with it before torch or numpy is imported."""

from __future__ import annotations

from pathlib import Path

from detkit.errors import OptionError

FORMATS = ("onnx", "torchscript")
TORCHSCRIPT_SUFFIXES = (".ts", ".torchscript", ".jit")


def format_of(out: str | Path, fmt: str | None) -> str:
    """``fmt`` when given, else the format OUT's suffix names (.onnx; .ts, .torchscript, .jit). A suffix
    that names the other format is refused: the runtime picks the backend by the suffix, so a TorchScript
    file named ``.onnx`` could not be run."""
    suffix = Path(out).suffix.lower()
    named = "onnx" if suffix == ".onnx" else "torchscript" if suffix in TORCHSCRIPT_SUFFIXES else None
    if fmt is not None and named is not None and fmt != named:
        raise OptionError("format", f"{fmt} contradicts {out}: the suffix {suffix} is for {named}")
    if fmt is not None:
        return fmt
    if named is None:
        raise OptionError("format", f"is needed: {out} ends neither in .onnx nor in .ts")
    return named
