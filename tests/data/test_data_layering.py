"""qkv.data sits below io, models, training, generation, viz and cli: none of its modules
imports them (lazily or not), so the tokenizer can serve every layer above."""

import ast
from pathlib import Path

import qkv.data

HIGHER = ("qkv.io", "qkv.models", "qkv.training", "qkv.generation", "qkv.viz", "qkv.cli")


def test_data_imports_no_higher_layer() -> None:
    offenders = []
    for path in sorted(Path(qkv.data.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(HIGHER)]
    assert offenders == []
