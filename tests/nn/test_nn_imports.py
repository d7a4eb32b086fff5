"""qkv.nn has no import cycles, counting lazy and TYPE_CHECKING imports too (a cycle hidden
in a function body is still a cycle a reader has to hold in their head)."""

from __future__ import annotations

import ast
from pathlib import Path

import qkv.nn

PACKAGE = Path(qkv.nn.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every qkv.nn module ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("qkv.nn.")}


def test_nn_modules_import_each_other_without_cycles() -> None:
    graph = {f"qkv.nn.{p.stem}": _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert graph, "no modules found"
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, f"import cycle: {' -> '.join([*visiting, module])}"
        visiting.append(module)
        for imported in graph.get(module, ()):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_record_does_not_import_attention() -> None:
    assert "qkv.nn.attention" not in _imports(PACKAGE / "record.py")
