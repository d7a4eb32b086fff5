"""The layers contract (``[tool.importlinter]`` in pyproject.toml, run by ``lint-imports`` in
.ci/run) holds for the tree and catches a violation; ``import qkv`` stays light; modules stay
small or say why."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "qkv"
MAX_LINES = 400


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed: pip install -e '.[dev]'")
    return subprocess.run(
        ["lint-imports", "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root / "src"), "PATH": str(Path(sys.executable).parent)},
    )


def test_the_tree_keeps_the_layers_contract() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("attention/alibi.py", "import qkv.models", "qkv.attention is not allowed to import"),
        ("nn/rotary.py", "from qkv.nn import attention", "No cycles are allowed in qkv.nn"),
    ],
)
def test_a_violation_breaks_the_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    """An upward import or a new cycle in a scratch copy of the package fails the check."""
    shutil.copytree(PACKAGE, tmp_path / "src" / "qkv", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "qkv" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert broken in done.stdout


def test_import_qkv_is_light() -> None:
    code = (
        "import sys, qkv\n"
        "heavy = ['triton', 'torch.nn.attention.flex_attention', 'qkv.bench', "
        "'qkv.attention.triton_kernels.autograd', 'qkv.models', 'qkv.training', 'matplotlib', "
        "'transformers', 'peft', 'datasets']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_modules_stay_small_or_say_why() -> None:
    long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > MAX_LINES and "lines" not in docstring:
            long[str(path.relative_to(PACKAGE))] = text.count("\n")
    assert long == {}, f"split these modules or say in the docstring why they are long: {long}"
