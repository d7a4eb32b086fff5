"""Seeing self-attention: capture, walkthrough, head-role scores, rollout and rendering.

Public names load on first use so that ``import qkv.viz`` does not pull in matplotlib.

Example::

    >>> from qkv import viz
    >>> cap = viz.capture(model, tokenizer, "The cat sat on the mat.")
    >>> viz.explain("The cat sat on the mat.", layer=0, head=3, token="cat")
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Capture": "qkv.viz.capture",
    "capture": "qkv.viz.capture",
    "capture_weights": "qkv.viz.capture",
    "capture_ids": "qkv.viz.capture",
    "Walkthrough": "qkv.viz.explain",
    "explain": "qkv.viz.explain",
    "HeadScores": "qkv.viz.heads",
    "head_scores": "qkv.viz.heads",
    "score_weights": "qkv.viz.heads",
    "previous_token_score": "qkv.viz.heads",
    "duplicate_token_score": "qkv.viz.heads",
    "induction_score": "qkv.viz.heads",
    "sink_share": "qkv.viz.heads",
    "entropy": "qkv.viz.heads",
    "repeated_random_tokens": "qkv.viz.heads",
    "rollout": "qkv.viz.rollout",
    "plot_grid": "qkv.viz.heatmap",
    "plot_head": "qkv.viz.heatmap",
    "plot_head_scores": "qkv.viz.heatmap",
    "save_png": "qkv.viz.heatmap",
    "terminal_heatmap": "qkv.viz.terminal",
    "top_attended": "qkv.viz.terminal",
    "open_model": "qkv.viz.model_source",
    "AttentionView": "qkv.viz.html",
    "write_html": "qkv.viz.html",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qkv.viz' has no attribute {name!r}")
