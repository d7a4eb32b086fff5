"""The attention package's shape: it imports nothing of qkv outside itself, its modules import
each other without cycles, ``import qkv`` stays light, and files stay small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "qkv" / "attention"
MAX_LINES = 400


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


def test_no_import_cycles_between_attention_modules() -> None:
    # A package's __init__ re-exports its children; edges *into* an __init__ from its own
    # children would be a cycle, edges from __init__ downwards are not.
    edges = {
        name: {m for m in imports if m in MODULES and m != name and m != "qkv.attention"}
        for name, imports in GRAPH.items()
    }
    into_init = {n: sorted(m for m in GRAPH[n] if m == "qkv.attention") for n in GRAPH}
    assert {n: m for n, m in into_init.items() if m and n != "qkv.attention"} == {}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, name, target]))
            if target not in state:
                visit(target, [*path, name])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [])


def test_registry_imports_nothing_above_call() -> None:
    assert GRAPH["qkv.attention.registry"] == {"qkv.attention.call"}


def test_import_qkv_is_light() -> None:
    code = (
        "import sys, qkv\n"
        "heavy = ['triton', 'torch.nn.attention.flex_attention', 'qkv.bench', "
        "'qkv.attention.triton_kernels.autograd', 'qkv.models', 'qkv.training']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_modules_stay_small_or_say_why() -> None:
    long = {}
    for name, path in MODULES.items():
        text = path.read_text()
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and "lines" not in docstring:
            long[name] = lines
    assert long == {}
