"""Hub ids resolved through a real huggingface_hub cache made in a temporary HF_HOME, offline:
an id loads (model and tokenizer) as its source folder does; a missing id, an unknown
revision and an incomplete snapshot are each one clear error; a revision selects its
snapshot; a local folder wins over an id of the same spelling; a .bin-only snapshot loads;
the download patterns fetch only what qkv reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import qkv
from hub_fixtures import add_snapshot, write_model
from qkv.io.hub import (
    BIN_PATTERNS,
    MODEL_PATTERNS,
    SAFETENSORS_PATTERNS,
    ModelNotFoundError,
    resolve_model,
)

REPO = "qkv-test/tiny-chat"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
IDS = torch.tensor([[1, 5, 9, 30, 2, 7, 100]])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty huggingface_hub cache under a temporary HF_HOME, offline."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf-home" / "hub"


def _logits(model_or_path) -> torch.Tensor:
    model = qkv.load(model_or_path) if isinstance(model_or_path, str | Path) else model_or_path
    with torch.no_grad():
        return model(IDS)


def test_the_cache_is_huggingface_hubs_layout(cache: Path, tmp_path: Path) -> None:
    from huggingface_hub import scan_cache_dir

    add_snapshot(cache, REPO, write_model(tmp_path / "a"), commit=COMMIT_A, refs=("main",))
    add_snapshot(cache, REPO, write_model(tmp_path / "b", seed=1), commit=COMMIT_B, refs=("v2",))
    (repo,) = scan_cache_dir(cache).repos
    assert repo.repo_id == REPO and repo.repo_type == "model"
    revisions = {r.commit_hash: set(r.refs) for r in repo.revisions}
    assert revisions == {COMMIT_A: {"main"}, COMMIT_B: {"v2"}}
    snapshot = cache / "models--qkv-test--tiny-chat" / "snapshots" / COMMIT_A
    assert (snapshot / "model.safetensors").is_symlink()


def test_an_id_loads_model_and_tokenizer(cache: Path, tmp_path: Path) -> None:
    source = write_model(tmp_path / "source")
    snapshot = add_snapshot(cache, REPO, source, commit=COMMIT_A)
    assert resolve_model(REPO) == snapshot
    assert torch.equal(_logits(REPO), _logits(source))
    tokenizer, expected = qkv.load_tokenizer(REPO), qkv.load_tokenizer(source)
    text = "Hello! What is the capital of France?"
    assert tokenizer.encode(text) == expected.encode(text)
    assert tokenizer.eos_token_id == expected.eos_token_id == 2  # <|im_end|>, as configured
    assert tokenizer.chat_template == expected.chat_template is not None


def test_a_missing_id_is_one_clear_error(cache: Path) -> None:
    for load in (qkv.load, qkv.load_tokenizer):
        with pytest.raises(ModelNotFoundError) as caught:
            load("qkv-test/absent")
        message = str(caught.value)
        assert "'qkv-test/absent'" in message and "not in the Hugging Face cache" in message
        assert "hf download qkv-test/absent" in message and "HF_HUB_OFFLINE" in message
        assert str(cache) in message and "\n" not in message
        assert isinstance(caught.value, FileNotFoundError | ValueError)


def test_a_path_that_does_not_exist_is_named(tmp_path: Path, cache: Path) -> None:
    for spelling in (str(tmp_path / "nothing"), "./nothing", "~/no/such/folder", "a/b/c"):
        with pytest.raises(FileNotFoundError, match="no model directory at .* does not exist"):
            qkv.load(spelling)


def test_a_revision_selects_its_snapshot(cache: Path, tmp_path: Path) -> None:
    add_snapshot(cache, REPO, write_model(tmp_path / "a"), commit=COMMIT_A, refs=("main",))
    add_snapshot(cache, REPO, write_model(tmp_path / "b", seed=1), commit=COMMIT_B, refs=("v2",))
    a, b = _logits(tmp_path / "a"), _logits(tmp_path / "b")
    assert not torch.equal(a, b)
    assert torch.equal(_logits(REPO), a)
    assert torch.equal(_logits(qkv.load(REPO, revision="v2")), b)
    assert torch.equal(_logits(qkv.load(REPO, revision=COMMIT_B)), b)
    assert resolve_model(REPO, revision="v2").name == COMMIT_B
    with pytest.raises(ModelNotFoundError, match="revision 'v3'.*cached: main, v2"):
        qkv.load(REPO, revision="v3")


def test_a_local_folder_wins_over_an_id(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_snapshot(cache, REPO, write_model(tmp_path / "hub-copy"), commit=COMMIT_A)
    work = tmp_path / "work"
    write_model(work / REPO, seed=3)  # ./qkv-test/tiny-chat, spelled like the id
    monkeypatch.chdir(work)
    assert resolve_model(REPO) == Path(REPO)
    assert torch.equal(_logits(REPO), _logits(work / REPO))
    assert not torch.equal(_logits(REPO), _logits(tmp_path / "hub-copy"))
    with pytest.raises(ValueError, match="is a local folder; drop the revision"):
        qkv.load(REPO, revision="main")


def test_an_incomplete_snapshot_is_one_clear_error(cache: Path, tmp_path: Path) -> None:
    add_snapshot(cache, REPO, write_model(tmp_path / "a"), commit=COMMIT_A,
                 skip=("model.safetensors",))  # fmt: skip
    with pytest.raises(ModelNotFoundError, match="incomplete.*hf download qkv-test/tiny-chat"):
        qkv.load(REPO)
    # the tokenizer files are all there, so the tokenizer alone still loads
    assert qkv.load_tokenizer(REPO).eos_token_id == 2


def test_a_bin_only_snapshot_loads_without_unpickling_code(cache: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    source = write_model(tmp_path / "bin")
    expected = _logits(source)
    weights = source / "model.safetensors"
    torch.save(load_file(weights), source / "pytorch_model.bin")
    weights.unlink()
    add_snapshot(cache, REPO, source, commit=COMMIT_A)
    assert torch.equal(_logits(REPO), expected)


def test_the_patterns_fetch_only_what_qkv_reads() -> None:
    from huggingface_hub.utils import filter_repo_objects

    def fetched(files: list[str], patterns: tuple[str, ...]) -> set[str]:
        return set(filter_repo_objects(files, allow_patterns=list(patterns)))

    mistral = [".gitattributes", "README.md", "config.json", "generation_config.json",
               "consolidated.safetensors", "params.json", "tokenizer.model.v3",
               "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
               "model-00003-of-00003.safetensors", "model.safetensors.index.json",
               "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]  # fmt: skip
    assert fetched(mistral, (*MODEL_PATTERNS, *SAFETENSORS_PATTERNS)) == {
        "config.json", "generation_config.json", "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
        "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json",
        "tokenizer_config.json",
    }  # fmt: skip
    legacy = ["config.json", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
              "onnx/model.onnx", "training_args.bin", "vocab.json", "merges.txt",
              "chat_template.jinja", "additional_chat_templates/tool_use.jinja"]  # fmt: skip
    assert fetched(legacy, (*MODEL_PATTERNS, *BIN_PATTERNS)) == {
        "config.json", "pytorch_model.bin", "vocab.json", "merges.txt", "chat_template.jinja",
        "additional_chat_templates/tool_use.jinja",
    }  # fmt: skip
