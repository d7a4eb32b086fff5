"""Model names to local folders: a folder on disk, or a Hugging Face hub id fetched (and cached)
by ``huggingface_hub``.

:func:`resolve_model` is the one resolver behind ``qkv.load``, the CLI's ``--model`` and (later)
``qkv train --init-from``; :func:`resolve_tokenizer` fetches the tokenizer files only. The rules:

- **A local folder wins**: a path that exists is returned as it is, even when a hub id of the
  same spelling exists. A name that can only be a path (``./x``, ``/x``, ``~/x``, ``a/b/c``)
  and does not exist is a FileNotFoundError naming it.
- **Otherwise the name is a hub id** (``gpt2``, ``Qwen/Qwen2.5-0.5B``), downloaded with
  ``snapshot_download`` into huggingface_hub's cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``,
  else ``~/.cache/huggingface/hub``), with its progress bar, at ``revision`` (branch, tag or
  commit; default ``main``). Only the files qkv reads are fetched: config.json,
  generation_config.json, the tokenizer files, and the weights: ``model*.safetensors`` with
  their index, or ``pytorch_model*.bin`` (read with ``weights_only=True``) only when the
  snapshot has no safetensors. Patterns name ``model*`` rather than ``*.safetensors`` so a
  repository that also ships ``consolidated.safetensors`` (Mistral) is not fetched twice.
- **Offline** (``HF_HUB_OFFLINE=1``, read at each call) only the cache is used.
- **Every failure is one** :class:`ModelNotFoundError` line naming the id and the fix:
  not cached while offline, not on the hub (or private), gated, unknown revision, no network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "MODEL_PATTERNS",
    "TOKENIZER_PATTERNS",
    "ModelNotFoundError",
    "hub_cache_dir",
    "is_offline",
    "resolve_model",
    "resolve_tokenizer",
]

TOKENIZER_PATTERNS = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "additional_chat_templates/*.jinja",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
)
# config.json, generation defaults, sentence-transformers pooling settings, the tokenizer.
MODEL_PATTERNS = (
    "config.json",
    "generation_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "*_Pooling/config.json",
    *TOKENIZER_PATTERNS,
)
SAFETENSORS_PATTERNS = ("model*.safetensors", "model.safetensors.index.json")
BIN_PATTERNS = ("pytorch_model*.bin", "pytorch_model.bin.index.json")

_TRUE = {"1", "on", "yes", "true"}
_DOWNLOAD_HINT = "`hf download {id}` (`huggingface-cli download {id}` on older huggingface_hub)"


class ModelNotFoundError(FileNotFoundError, ValueError):
    """A model name that is neither a local folder nor a hub id that could be fetched.

    A FileNotFoundError (as a missing folder always was) and a ValueError (a bad argument);
    its message is one line naming the name and the fix.
    """


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_cache_dir() -> Path:
    """The cache huggingface_hub uses: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else its default
    (read from the environment now, so a changed ``HF_HOME`` takes effect without a restart)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE).expanduser()


def resolve_model(name_or_path: str | os.PathLike[str], revision: str | None = None) -> Path:
    """The local folder holding the model ``name_or_path``: the folder itself when it exists
    on disk, else the hub snapshot of that id (downloaded if needed and allowed).

    Raises FileNotFoundError for a path that does not exist and :class:`ModelNotFoundError`
    for a hub id that cannot be had, each naming the fix; ValueError for ``revision`` with a
    local folder.

    Example::

        >>> resolve_model("runs/mine")              # a local folder: itself
        >>> resolve_model("Qwen/Qwen2.5-0.5B")      # .../models--Qwen--Qwen2.5-0.5B/snapshots/<sha>
        >>> resolve_model("gpt2", revision="607a30d783dfa663caf39e06633721c8d4cfcd7e")
    """
    local = _local(name_or_path, revision)
    if local is not None:
        return local
    repo_id = str(name_or_path)
    folder = _snapshot(repo_id, revision, (*MODEL_PATTERNS, *SAFETENSORS_PATTERNS))
    if not any(folder.glob("model*.safetensors")):
        folder = _snapshot(repo_id, revision, (*MODEL_PATTERNS, *BIN_PATTERNS))
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"hub model {repo_id!r} has no config.json in {folder}: it is not a transformers "
            f"model repository, or its download is incomplete (re-run {_hint(repo_id)})"
        )
    if not any(folder.glob("model*.safetensors")) and not any(folder.glob("pytorch_model*.bin")):
        where = "cached snapshot" if is_offline() else "snapshot"
        raise ModelNotFoundError(
            f"the {where} of {repo_id!r} ({folder}) has no weights (model*.safetensors or "
            f"pytorch_model*.bin): download them with {_hint(repo_id)}"
            + (" or unset HF_HUB_OFFLINE" if is_offline() else "")
        )
    return folder


def resolve_tokenizer(name_or_path: str | os.PathLike[str], revision: str | None = None) -> Path:
    """Like :func:`resolve_model`, fetching only config and tokenizer files (no weights).

    Example::

        >>> tok = qkv.load_tokenizer("Qwen/Qwen2.5-0.5B-Instruct")   # a few MB, not the model
    """
    local = _local(name_or_path, revision)
    if local is not None:
        return local
    return _snapshot(str(name_or_path), revision, MODEL_PATTERNS)


def _local(name_or_path: str | os.PathLike[str], revision: str | None) -> Path | None:
    """The local path when ``name_or_path`` exists on disk; None for a hub id; raises for a
    path-only spelling that does not exist."""
    if not isinstance(name_or_path, str | os.PathLike):
        raise ValueError(
            f"model must be a folder path or a Hugging Face hub id (a string), got "
            f"{type(name_or_path).__name__}"
        )
    text = os.fspath(name_or_path)
    if not text.strip():
        raise ValueError("model name is empty: pass a folder path or a hub id such as gpt2")
    path = Path(text).expanduser()
    if path.exists():
        if revision is not None:
            raise ValueError(
                f"revision={revision!r} selects a version of a Hugging Face hub model, but "
                f"{text!r} is a local folder; drop the revision (--revision)"
            )
        return path
    if isinstance(name_or_path, os.PathLike) or not _is_repo_id(text):
        raise FileNotFoundError(
            f"no model directory at {text}: it does not exist; pass a folder written by qkv "
            "train / qkv.save, a Hugging Face checkpoint folder, or a hub id such as "
            "Qwen/Qwen2.5-0.5B"
        )
    return None


# huggingface_hub's own rule (validate_repo_id) plus: no path syntax (./x, ~/x, a/b/c).
_REPO_ID = re.compile(r"^(?:[\w.\-]{1,96}/)?[\w.\-]{1,96}$")


def _is_repo_id(text: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if text.startswith((".", "~")) or not _REPO_ID.match(text):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _hint(repo_id: str) -> str:
    return _DOWNLOAD_HINT.format(id=repo_id)


def _snapshot(repo_id: str, revision: str | None, patterns: tuple[str, ...]) -> Path:
    """``snapshot_download`` of ``patterns`` with every hub failure turned into one line."""
    from huggingface_hub import errors as hub_errors
    from huggingface_hub import snapshot_download

    offline = is_offline()
    cache = hub_cache_dir()
    at = f" at revision {revision!r}" if revision is not None else ""
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache,
            allow_patterns=list(patterns),
            local_files_only=offline,
        )
    except hub_errors.GatedRepoError:
        raise ModelNotFoundError(
            f"hub model {repo_id!r} is gated: accept its licence on "
            f"https://huggingface.co/{repo_id}, then log in with `hf auth login` (or set "
            "HF_TOKEN) and try again"
        ) from None
    except hub_errors.RevisionNotFoundError:
        raise ModelNotFoundError(
            f"hub model {repo_id!r} has no revision {revision!r}: pass a branch, tag or commit "
            f"that exists (see https://huggingface.co/{repo_id}/tree/main)"
        ) from None
    except hub_errors.RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"hub model {repo_id!r} was not found (no such repository, or it is private): "
            "check the spelling, or for a private model log in with `hf auth login`; a local "
            f"folder named {repo_id!r} does not exist either"
        ) from None
    except hub_errors.LocalEntryNotFoundError as error:
        # IncompleteSnapshotError (huggingface_hub >= 1.x) is a LocalEntryNotFoundError
        if type(error).__name__ == "IncompleteSnapshotError":
            raise ModelNotFoundError(
                f"the cached snapshot of {repo_id!r}{at} in {cache} is incomplete and the hub "
                f"cannot be reached: finish the download with {_hint(repo_id)}"
                + (" or unset HF_HUB_OFFLINE" if offline else "")
            ) from None
        if offline:
            raise ModelNotFoundError(
                f"model {repo_id!r}{at} is not a local folder and is not in the Hugging Face "
                f"cache ({cache}){_cached_refs(cache, repo_id)}, and HF_HUB_OFFLINE=1 forbids "
                f"downloading it: fetch it with {_hint(repo_id)}, or unset HF_HUB_OFFLINE; "
                "check the spelling"
            ) from None
        raise ModelNotFoundError(
            f"model {repo_id!r}{at} is not a local folder, not in the Hugging Face cache "
            f"({cache}), and the hub could not be reached: check the network and the spelling, "
            f"or fetch it elsewhere with {_hint(repo_id)} and copy the cache"
        ) from None
    except hub_errors.HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        raise ModelNotFoundError(
            f"the Hugging Face hub refused {repo_id!r}{at} (HTTP {status}): "
            + (
                "log in with `hf auth login` or set HF_TOKEN"
                if status in (401, 403)
                else "try again later, or use a cached copy with HF_HUB_OFFLINE=1"
            )
        ) from None
    return Path(folder)


def _cached_refs(cache: Path, repo_id: str) -> str:
    """``"; cached revisions: main, v1"`` when some other revision of the repo is cached."""
    from huggingface_hub.file_download import repo_folder_name

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    refs = sorted(p.name for p in (storage / "refs").glob("*")) if storage.is_dir() else []
    snapshots = (
        sorted(p.name for p in (storage / "snapshots").glob("*")) if storage.is_dir() else []
    )
    if not refs and not snapshots:
        return ""
    return f"; cached: {', '.join(refs + [s[:12] for s in snapshots])}"
