"""The ``qkv`` entry point: help for every subcommand, one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from qkv.cli.main import SUBCOMMANDS, build_parser, main


def _available() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return list(action.choices)


def test_top_level_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in _available():
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    if name not in _available():
        pytest.skip(f"qkv {name} is not part of this build")
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: qkv " + name in capsys.readouterr().out


def test_unknown_subcommand_is_one_line_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qkv", "no-such-command"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no-such-command" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_subcommand_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: qkv" in capsys.readouterr().out


def test_import_qkv_is_light() -> None:
    code = (
        "import sys, qkv; heavy = [m for m in ('transformers', 'matplotlib', 'triton') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
