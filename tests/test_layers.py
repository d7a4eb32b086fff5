"""The package's layer order, checked on the source: a module imports only from its own layer
or the layers below (function-level imports included), so ``qkv.atomic`` needs nothing of
qkv and no layer below ``qkv.experiments`` reaches up into it."""

import ast
from pathlib import Path

import pytest

import qkv

# attention → nn → models → io / generation / data → training → viz → experiments → cli
LAYERS = {
    "atomic": 0, "attention": 1, "nn": 2, "models": 3, "io": 4, "generation": 4, "data": 4,
    "training": 5, "viz": 6, "experiments": 7, "cli": 8,
}  # fmt: skip
PACKAGE = Path(qkv.__file__).parent


def _qkv_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.startswith("qkv.")]


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "__init__.py"),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_imports_go_down_the_layers(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if own not in LAYERS:
        pytest.skip(f"{own} is an entry point, above every layer")
    upward = [
        f"line {line}: {name}"
        for line, name in _qkv_imports(path)
        if LAYERS.get(name.split(".")[1], 99) > LAYERS[own]
    ]
    assert not upward, f"{own} must not import from a higher layer: {upward}"


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(LAYERS), f"give {sorted(packages - set(LAYERS))} a place in LAYERS"
