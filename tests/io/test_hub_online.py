"""What resolve_model asks huggingface_hub for when it may go online, and how it words the
hub's refusals: ``snapshot_download`` is replaced by a stand-in that records its arguments
and serves or raises what the hub would (no network here). Safetensors are asked for first;
``pytorch_model*.bin`` only when the snapshot has none; each HTTP failure is one line."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import errors

from qkv.io.hub import BIN_PATTERNS, SAFETENSORS_PATTERNS, ModelNotFoundError, resolve_model

httpx = pytest.importorskip("httpx2", reason="huggingface_hub's HTTP errors wrap httpx2 responses")


@pytest.fixture
def online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    calls: list[dict] = []

    def serve(files: list[str] = (), error: Exception | None = None):
        def snapshot_download(repo_id: str, **options) -> str:
            calls.append({"repo_id": repo_id, **options})
            if error is not None:
                raise error
            folder = tmp_path / repo_id.replace("/", "--")
            for name in files:
                if any(Path(name).match(p) for p in options["allow_patterns"]):
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_text("x")
            return str(folder)

        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)

    return serve, calls, tmp_path


def test_safetensors_first_and_bin_only_without_them(online) -> None:
    serve, calls, tmp_path = online
    serve(["config.json", "model.safetensors", "pytorch_model.bin"])
    folder = resolve_model("org/both", revision="v1")
    assert [c["revision"] for c in calls] == ["v1"] and len(calls) == 1
    assert set(SAFETENSORS_PATTERNS) <= set(calls[0]["allow_patterns"])
    assert not set(BIN_PATTERNS) & set(calls[0]["allow_patterns"])
    assert calls[0]["cache_dir"] == tmp_path / "home" / "hub" and not calls[0]["local_files_only"]
    assert not (folder / "pytorch_model.bin").exists()
    calls.clear()
    serve(["config.json", "pytorch_model.bin"])
    resolve_model("org/legacy")
    assert len(calls) == 2 and set(BIN_PATTERNS) <= set(calls[1]["allow_patterns"])


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/x"))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (errors.GatedRepoError("gated", response=_response(403)), "is gated: accept its licence"),
        (errors.RepositoryNotFoundError("404", response=_response(404)), "check the spelling"),
        (errors.RevisionNotFoundError("rev", response=_response(404)), "has no revision 'v1'"),
        (errors.HfHubHTTPError("401", response=_response(401)), "HTTP 401.*hf auth login"),
        (errors.HfHubHTTPError("500", response=_response(500)), "HTTP 500.*try again later"),
        (errors.LocalEntryNotFoundError("no connection"), "hub could not be reached"),
    ],
)
def test_hub_refusals_are_one_line(online, error: Exception, message: str) -> None:
    serve, _, _ = online
    serve(error=error)
    with pytest.raises(ModelNotFoundError, match=message) as caught:
        resolve_model("org/model", revision="v1")
    assert "'org/model'" in str(caught.value) and "\n" not in str(caught.value)
