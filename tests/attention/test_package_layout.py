"""The attention package's shape beyond the layers contract (tests/test_layers.py): it imports
nothing of qkv outside itself, not even the top-level ``qkv``, and the registry nothing above
the call object."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "qkv" / "attention"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every qkv module ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "qkv"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "qkv":
                continue
            package = PACKAGE.parent.parent / node.module.replace(".", "/")
            for alias in node.names:
                if (package / f"{alias.name}.py").exists():  # a submodule of node.module
                    found.add(f"{node.module}.{alias.name}")
                else:  # a name defined by node.module itself
                    found.add(node.module)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def test_attention_imports_nothing_of_qkv_outside_itself() -> None:
    outside = {
        name: sorted(m for m in imports if not m.startswith("qkv.attention"))
        for name, imports in GRAPH.items()
    }
    assert {name: mods for name, mods in outside.items() if mods} == {}


def test_registry_imports_nothing_above_call() -> None:
    assert GRAPH["qkv.attention.registry"] == {"qkv.attention.call"}
