"""Library messages describe values, the CLI names flags: the one mapping (``flags``), and a guard that no
message of a library module spells a ``--flag`` itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from detkit.errors import DetkitError, InputError, OptionError, cli_text

DETKIT = Path(__file__).resolve().parents[1] / "detkit"

# calls whose string arguments a user reads: console and logging helpers, print, and any exception made
MESSAGE_CALLS = {"warn", "info", "note", "print", "warning", "error", "echo", "secho"}
FLAG = re.compile(r"(?<![\w-])--[a-z]")  # "--lenient", not "a--b" nor a "---" rule


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _flag_strings(call: ast.Call) -> list[str]:
    """String literals of ``call``'s arguments that spell a flag. ``flags=`` / ``flag=`` are left out:
    they are the CLI's side of the mapping (``DetkitError.flags``, ``OptionError.flag``, ``warn(flags=)``)."""
    values = [*call.args, *(k.value for k in call.keywords if k.arg not in ("flags", "flag"))]
    return [
        n.value
        for v in values
        for n in ast.walk(v)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and FLAG.search(n.value)
    ]


def flag_messages(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal spelling a ``--flag`` in a message call of ``source``: a
    ``raise``'s call, a call of :data:`MESSAGE_CALLS`, or a constructor whose name ends in Error."""
    calls: list[ast.Call] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            calls.append(node.exc)
        elif isinstance(node, ast.Call) and (
            _callee(node) in MESSAGE_CALLS or _callee(node).endswith(("Error", "Exception"))
        ):
            calls.append(node)
    return sorted({(c.lineno, s) for c in calls for s in _flag_strings(c)})


def _library_modules() -> list[Path]:
    """Every module of detkit/ but the CLI's: detkit/cli.py, any cli.py, anything under a cli/ folder."""
    return [
        p
        for p in sorted(DETKIT.rglob("*.py"))
        if p.name != "cli.py" and "cli" not in p.relative_to(DETKIT).parts[:-1]
    ]


def test_no_library_message_names_a_flag():
    modules = _library_modules()
    assert len(modules) > 100 and DETKIT / "train" / "harness.py" in modules
    assert DETKIT / "datasets" / "cli" / "ops.py" not in modules and DETKIT / "yolo" / "cli.py" not in modules
    found = [
        f"{p.relative_to(DETKIT.parent)}:{line}: {text!r}"
        for p in modules
        for line, text in flag_messages(p.read_text(encoding="utf-8"))
    ]
    assert found == [], "library messages name values; map them to flags with flags=:\n" + "\n".join(found)


def test_the_guard_sees_each_kind_of_message_call():
    src = """
raise DetkitError(f"{p}: give --data")
raise H.diverged(path, 3, "try a lower --lr")
warn("no --val-data: mAP on the training images")
console.info("x" + "pass --format")
err = InputError(p, None, "a" if ok else "use --lenient")
raise DetkitError("give data=DIR", flags={"data=DIR": "--data DIR"})
raise OptionError("img_size", "must be 32k", flag="--img-size")
doc = {"cmd": "--fix"}
"""
    assert flag_messages(src) == [
        (2, ": give --data"),  # the literal part of the f-string
        (3, "try a lower --lr"),
        (4, "no --val-data: mAP on the training images"),
        (5, "pass --format"),
        (6, "use --lenient"),
    ]


def test_cli_text_replaces_each_library_phrase_in_order():
    flags = {"resume it,": "continue it with --resume r,", "exist_ok=True": "--exist-ok"}
    assert (
        cli_text("r: resume it, or exist_ok=True", flags) == "r: continue it with --resume r, or --exist-ok"
    )
    assert cli_text("no phrase here", flags) == "no phrase here"
    assert cli_text("exist_ok=True", None) == "exist_ok=True"


def test_errors_keep_the_library_words_and_give_the_cli_the_flags():
    e = InputError("a.json", 3, "bad box; lenient=True skips it", flags={"lenient=True": "--lenient"})
    assert str(e) == "a.json:3: bad box; lenient=True skips it"
    assert e.cli_message() == "a.json:3: bad box; --lenient skips it"
    assert DetkitError("plain").cli_message() == "plain"
    o = OptionError("img_size", "must be a multiple of 32, got 50")
    assert str(o) == "img_size must be a multiple of 32, got 50"
    assert o.cli_message() == "--img-size must be a multiple of 32, got 50"
