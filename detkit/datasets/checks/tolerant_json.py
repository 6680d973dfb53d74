"""Tolerant JSON decoding for ``detkit coco validate``: what every other command rejects, read anyway.

NaN/Infinity literals, a byte-order mark, UTF-16/32 text, lone surrogate escapes and integers too long
for Python's int parser are all decoded (and, with a :class:`Findings`, reported); only text that is
not JSON at all raises :class:`InputError`. :func:`show` renders any decoded value briefly for a note.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec

from detkit.datasets.checks.findings import Findings
from detkit.datasets.formats.readers import read_bytes
from detkit.errors import InputError

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # \ud800..\udfff: maybe a lone one
_SURROGATE_TEXT = re.compile(_SURROGATE_ESCAPE.pattern.decode())


class HugeNumber:
    """A JSON integer too long for Python's int parsing (over 4,000 digits): kept as its digits, never a
    number; ``--fix`` writes it back verbatim where the record is kept."""

    __slots__ = ("digits",)

    def __init__(self, digits: str):
        self.digits = digits


def show(v: Any, limit: int = 40) -> str:
    """A short JSON-ish rendering of a value for a finding's note (never fails, never huge)."""
    if isinstance(v, HugeNumber) or (isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 128):
        digits = len(v.digits) if isinstance(v, HugeNumber) else int(v.bit_length() * 0.30103)  # no int->str
        return f"an integer of about {digits} digits"
    if isinstance(v, list) and len(v) <= 8 and not any(isinstance(x, (list, dict)) for x in v):
        return ("[" + ", ".join(show(x, limit) for x in v) + "]")[: 2 * limit]
    try:
        text = json.dumps(v)
    except (TypeError, ValueError, RecursionError):
        text = type(v).__name__
    return text[:limit]


def _parse_int(digits: str) -> int | HugeNumber:
    """json.loads' int parser without Python's int-string limit error (the checks report the value)."""
    return int(digits) if len(digits) <= 4000 else HugeNumber(digits)


def encode_hook(obj: Any) -> Any:
    """msgspec ``enc_hook`` for documents from :func:`decode_json`: huge integers go back as their digits."""
    if isinstance(obj, HugeNumber):
        return msgspec.Raw(obj.digits.encode())
    raise NotImplementedError(f"cannot write a {type(obj).__name__}")


def _text_of(path: Path, data: bytes, fnd: Findings | None) -> str:
    """The file as text: UTF-8 as every loader reads it; a BOM or UTF-16/32 is an error finding
    (the other commands reject those files) and the text is still read, so every other problem is listed."""
    encoding = "utf-8"
    if data.startswith(_BOMS) or (len(data) >= 2 and (data[0] == 0 or data[1] == 0)):
        encoding = json.detect_encoding(data)
        what = (
            "starts with a UTF-8 byte-order mark"
            if encoding == "utf-8-sig"
            else f"is {encoding.upper()} text"
        )
        if fnd is None:
            raise InputError(path, None, f"{what}, not plain UTF-8 JSON")
        fnd.add("file.encoding", "byte 0", note=f"{what}, not plain UTF-8 JSON")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            path,
            f"line {line}",
            f"not {encoding.upper()} text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
        ) from None


def _replace_lone_surrogates(doc: Any, fnd: Findings | None, changes: list | None = None) -> Any:
    """Find strings (values and keys) holding a lone surrogate, report each and replace it with U+FFFD.

    Iterative (a stack, not recursion): json.loads already bounds the depth, but this must not add to it.
    """

    def clean(s: str, where: str) -> str:
        try:
            s.encode("utf-8")
            return s
        except UnicodeEncodeError:
            if fnd is not None:
                fnd.add("value.lone_surrogate", where, note=show(s))
            fixed = s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            if changes is not None:
                changes.append(
                    {
                        "action": "replace_lone_surrogate",
                        "record": where,
                        "before": show(s),
                        "after": fixed[:40],
                    }
                )
            return fixed

    root = [doc]
    stack: list[tuple[Any, Any, str]] = [(root, 0, "$")]
    while stack:
        parent, key, where = stack.pop()
        v = parent[key]
        if isinstance(v, str):
            parent[key] = clean(v, where)
        elif isinstance(v, list):
            stack.extend((v, i, f"{where}[{i}]") for i in range(len(v)))
        elif isinstance(v, dict):
            if any(isinstance(k, str) and k != clean(k, f"{where} key") for k in list(v)):
                v = parent[key] = {clean(k, f"{where} key"): x for k, x in v.items()}
            stack.extend((v, k, f"{where}.{k}") for k in v)
    return root[0]


def decode_json(
    path: Path, fnd: Findings | None = None, data: bytes | None = None, changes: list | None = None
) -> Any:
    """Decode a JSON file generically; NaN/Infinity accepted (the checks report them).

    With ``fnd`` (validate), what every other command rejects outright but can still be read is an error
    finding: a byte-order mark, UTF-16/32 text, lone surrogate escapes (replaced by U+FFFD so ``--fix`` can
    write the result; ``changes`` gets one entry per repair). Nesting too deep for the decoders is an
    InputError."""
    data = read_bytes(path) if data is None else data
    if not data or data.isspace():  # (not data.strip(): that copies a 400 MB file)
        raise InputError(path, None, "file is empty")
    if not data.startswith(_BOMS) and not _SURROGATE_ESCAPE.search(data):
        try:
            return msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass  # msgspec rejects NaN/Infinity literals; Python's json reads them, and says where it fails
    text = _text_of(path, data, fnd)
    if changes is not None and fnd is not None and fnd.get("file.encoding"):
        changes.append(
            {
                "action": "write_utf8",
                "record": "byte 0",
                "before": fnd.get("file.encoding").examples[0]["note"],
                "after": "UTF-8",
            }
        )
    try:
        doc = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {exc.lineno} col {exc.colno}", f"malformed JSON ({exc.msg})") from None
    except RecursionError:
        raise InputError(path, None, "malformed JSON (nested too deeply)") from None
    if _SURROGATE_TEXT.search(text):
        doc = _replace_lone_surrogates(doc, fnd, changes)
    return doc
