"""detkit imports its own modules at module top; the few imports inside functions each say why (``# lazy:``),
and the reason is checked: a ``torch`` reason means the importing module stays torch-free while the module
it imports does not. The count may shrink, never grow silently."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LEVEL = 20  # function-level detkit imports today; lower it when one goes
REASON = re.compile(r"#\s*lazy:\s*(torch|torchvision|start-up time|cycle)\b")
TORCH_REASON = re.compile(r"#\s*lazy:\s*torch\b")
HEAVY = ("torch", "torchvision")
INDENTED = re.compile(r"^[ \t]+(from|import)[ \t]+detkit\b", re.M)


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / "detkit").rglob("*.py"))}


MODULES = _modules()


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads, the most specific first (``from a import b`` loads ``a.b`` when
    that is a module, and ``a``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level or not node.module:
        return []
    subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
    return [*subs, node.module]


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text())


@functools.cache
def _function_level() -> list[tuple[str, int, str, list[str]]]:
    """(file, line, imported module, source lines of the statement and the line above) of every detkit import
    that is not at module top (the count of /work/tools/graph.py)."""
    found = []
    for module, path in MODULES.items():
        text = path.read_text()
        if not INDENTED.search(text):  # no indented detkit import: nothing to parse
            continue
        lines = text.splitlines()
        tree = _tree(module)
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
                continue
            targets = [t for t in _targets(node) if t == "detkit" or t.startswith("detkit.")]
            if targets:
                around = lines[max(0, node.lineno - 2) : node.end_lineno]
                found.append((str(path.relative_to(ROOT)), node.lineno, targets[0], around))
    return found


def _imports_torch_at_top(module: str, seen: set[str] | None = None) -> bool:
    """True when importing ``module`` imports torch: at its top, or through a detkit module it imports at its
    top (or the packages above it)."""
    seen = set() if seen is None else seen
    if module in seen or module not in MODULES:
        return False
    seen.add(module)
    parents = [".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1)]
    if any(_imports_torch_at_top(p, seen) for p in parents):
        return True
    for node in _tree(module).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for t in _targets(node):
                if t.split(".")[0] in HEAVY or _imports_torch_at_top(t, seen):
                    return True
    return False


def test_function_level_imports_are_few_and_each_says_why():
    found = _function_level()
    assert len(found) <= MAX_FUNCTION_LEVEL, "\n".join(f"{f}:{n} {m}" for f, n, m, _ in found)
    unexplained = [
        f"{f}:{n}: {m}" for f, n, m, around in found if not any(REASON.search(line) for line in around)
    ]
    assert unexplained == [], "a function-level detkit import needs a '# lazy: <reason>' comment"


def test_a_torch_reason_is_true():
    """A ``# lazy: torch`` import loads a module that imports torch into one that does not."""
    wrong = []
    for f, n, m, around in _function_level():
        if not any(TORCH_REASON.search(line) for line in around):
            continue
        importer = _module_name(ROOT / f)
        if _imports_torch_at_top(importer):
            wrong.append(f"{f}:{n}: {importer} imports torch anyway")
        if not _imports_torch_at_top(m):
            wrong.append(f"{f}:{n}: {m} does not import torch")
    assert wrong == []


def test_the_reason_check_sees_torch():
    assert _imports_torch_at_top("detkit.yolo.train") and _imports_torch_at_top("detkit.deploy.export")
    assert not _imports_torch_at_top("detkit.datasets.load") and not _imports_torch_at_top("detkit.cli")


def test_dataset_loading_and_the_light_importers_stay_torch_free():
    """Measured, not inferred: the dataset path and every module that keeps a torch import inside a function
    import no torch."""
    light = sorted(
        {
            _module_name(ROOT / f)
            for f, _, _, around in _function_level()
            if any(TORCH_REASON.search(line) for line in around)
        }
        | {"detkit.datasets.load", "detkit.api"}
    )
    code = (
        "import importlib, sys\n"
        f"for m in {light!r}:\n"
        "    importlib.import_module(m)\n"
        "    assert 'torch' not in sys.modules, m\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "ok", out.stderr
