"""Nothing qkv reads from disk runs code: a pickle whose ``__reduce__`` would write a marker
file is planted in every file a load path opens (its manifest hash rewritten to match, which
is no obstacle to an attacker), and the marker must never appear. Old-format (version 1)
training states still resume, migrated on read, exactly as the new format does."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import qkv
from fault_helpers import cli_error, one_line_error, qkv_process, trained_run
from qkv.cli.main import main
from qkv.training.checkpoint import verify_checkpoint
from qkv.training.metrics import read_metrics


class _Payload:
    """Unpickling this runs ``exec``: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def _rehash(checkpoint: Path) -> None:
    """Rewrite the manifest so every hash matches the (tampered) files."""
    manifest = json.loads((checkpoint / "checkpoint.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((checkpoint / name).read_bytes()).hexdigest()
    (checkpoint / "checkpoint.json").write_text(json.dumps(manifest))


@pytest.fixture
def run(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return trained_run(tmp_path_factory, tmp_path / "run")


def test_a_crafted_train_state_does_not_run_on_resume(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    checkpoint = (run / "latest").resolve()
    torch.save({"optimizer": _Payload(marker), "step": 6}, checkpoint / "train_state.pt")
    _rehash(checkpoint)
    verify_checkpoint(checkpoint)  # the manifest is no obstacle: every hash matches
    result = qkv_process("train", "--resume", str(run), "--max-iters", "8", "--quiet",
                         cache=tmp_path / "cache")  # fmt: skip
    assert not marker.exists(), "the crafted pickle ran when the run was resumed"
    one_line_error(
        result.stderr, result.returncode, "train_state.pt", "builtins.exec", "not loaded"
    )
    from qkv.training import trainer
    from qkv.training.config import TrainConfig

    config = TrainConfig.from_dict(json.loads((checkpoint / "train_config.json").read_text()))
    with pytest.raises(ValueError, match="refers to code"):
        trainer.train(config.replace(max_iters=8), run, resume_from=checkpoint, quiet=True)
    assert not marker.exists()


def test_crafted_weights_and_tokenizer_do_not_run(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    checkpoint = (run / "latest").resolve()
    # qkv.load of a qkv checkpoint whose weights file is a pickle
    torch.save({"transformer.wte.weight": _Payload(marker)}, checkpoint / "model.safetensors")
    torch.save({"evil": _Payload(marker)}, checkpoint / "tokenizer.json")
    _rehash(checkpoint)
    with pytest.raises(ValueError, match="model.safetensors"):
        qkv.load(run / "latest")
    with pytest.raises(ValueError, match="tokenizer.json"):
        qkv.load_tokenizer(run / "latest")
    # a Hugging Face folder with a malicious pytorch_model.bin
    hf = qkv.save(qkv.models.GPT(qkv.models.preset("gpt-nano", vocab_size=64)), tmp_path / "hf",
                  format="hf")  # fmt: skip
    (hf / "model.safetensors").unlink()
    torch.save({"transformer.wte.weight": _Payload(marker)}, hf / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pytorch_model.bin"):
        qkv.load(hf)
    # the command-line readers: generate, eval and the viewer
    for args in (
        ["generate", str(run), "--max-new-tokens", "3"],
        ["eval", str(run), "--data", str(run.parent / "corpus.txt")],
        ["show", "some text", "--model", str(hf), "--out", str(tmp_path / "view.html")],
    ):
        cli_error(capsys, args)
    assert not marker.exists()


def test_viewer_data_is_decoded_as_numbers_only() -> None:
    from qkv.viz.html import decode_array

    with pytest.raises(ValueError, match="dtype"):
        decode_array({"dtype": "object", "shape": [1], "data": ""})
    entry = {"dtype": "float32", "shape": [2], "data": "AACAPwAAAEA="}
    assert decode_array(entry).tolist() == [1.0, 2.0]


def _as_version_1(checkpoint: Path) -> None:
    """Rewrite a checkpoint's train_state.pt as qkv wrote it before format version 2 (numpy
    and python RNG states as their get_state tuples)."""
    state = torch.load(checkpoint / "train_state.pt", weights_only=True)
    python, numpy = state["rng"]["python"], state["rng"]["numpy"]
    state["rng"]["python"] = (
        python["version"], tuple(int(x) for x in python["internal"].tolist()),
        python["gauss_next"],
    )  # fmt: skip
    state["rng"]["numpy"] = (
        numpy["algorithm"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
        numpy["has_gauss"], numpy["cached_gaussian"],
    )  # fmt: skip
    del state["format"], state["format_version"]
    torch.save(state, checkpoint / "train_state.pt")
    _rehash(checkpoint)


def test_a_version_1_train_state_resumes_exactly_like_version_2(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from qkv.training import state_file

    old, new = (trained_run(tmp_path_factory, tmp_path / name / "run") for name in ("v1", "v2"))
    _as_version_1((old / "latest").resolve())
    with pytest.raises(Exception, match="Unsupported global"):  # what weights_only refuses
        torch.load((old / "latest") / "train_state.pt", weights_only=True)
    migrated = state_file.load_train_state((old / "latest") / "train_state.pt")
    assert migrated["format_version"] == state_file.FORMAT_VERSION
    for run in (old, new):
        assert main(["train", "--resume", str(run), "--max-iters", "9", "--quiet"]) == 0
    curves = [
        [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run / "metrics.jsonl")]
        for run in (old, new)
    ]
    assert curves[0] == curves[1]
    assert [step for step, *_ in curves[0]][-3:] == [8, 9, 9]  # the resumed steps ran


def test_rng_states_round_trip_through_plain_tensors() -> None:
    from qkv.training import state_file

    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.gauss(0, 1)  # a cached gaussian is part of both states
    np.random.standard_normal()
    saved = state_file.rng_state()
    expected = (random.random(), float(np.random.standard_normal()), float(torch.rand(1)))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    state_file.set_rng_state(saved)
    assert (random.random(), float(np.random.standard_normal()), float(torch.rand(1))) == expected
