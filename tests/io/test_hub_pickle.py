"""A ``pytorch_model.bin`` is read with ``torch.load(weights_only=True)``: a checkpoint whose
pickle would run code is refused with a ValueError naming the file, and the code never runs,
whether it is read directly, through qkv.load of its folder, or by hub id."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import qkv
from hub_fixtures import add_snapshot, write_model
from qkv.io.files import read_weights


class _Payload:
    """Unpickling this calls os.mkdir(marker): the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _malicious(path: Path, marker: Path, *, zip_format: bool) -> Path:
    state = {"model.embed_tokens.weight": torch.zeros(2, 2), "evil": _Payload(marker)}
    if zip_format:
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    return path


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_malicious_bin_is_refused_and_never_runs(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "code-ran"
    file = _malicious(tmp_path / "pytorch_model.bin", marker, zip_format=zip_format)
    with pytest.raises(ValueError, match="pytorch_model.bin could not be read"):
        read_weights(file)
    assert not marker.exists()
    # the check is real: plain pickle loading of the same file runs the payload
    if not zip_format:
        pickle.loads(file.read_bytes())
        assert marker.exists()


def test_a_malicious_bin_by_folder_and_by_hub_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    marker = tmp_path / "code-ran"
    source = write_model(tmp_path / "evil")
    (source / "model.safetensors").unlink()
    _malicious(source / "pytorch_model.bin", marker, zip_format=True)
    add_snapshot(tmp_path / "hf-home" / "hub", "qkv-test/evil", source, commit="c" * 40)
    for name in (source, "qkv-test/evil"):
        with pytest.raises(ValueError, match="pytorch_model.bin could not be read"):
            qkv.load(name)
    assert not marker.exists()
