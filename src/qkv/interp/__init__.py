"""Looking inside causally: ablate heads, patch activations between a clean and a corrupted
run, read the residual stream through the logit lens and attribute a logit to heads.

Built on the hook points of :mod:`qkv.nn.hooks` (``model.run_with_cache`` /
``model.run_with_hooks``). Example::

    >>> from qkv import interp
    >>> interp.ablation_effects(model, ids)                         # (L, H) loss change
    >>> interp.patch_heads(model, clean, corrupt, metric)          # (L, H)
    >>> interp.logit_lens(model, ids)[-1]                          # == model(ids)
"""

from qkv.interp.ablate import ablate, ablation_effects, mean_z, next_token_loss
from qkv.interp.lens import FROZEN_SCALE_NOTE, HeadAttribution, head_attribution, logit_lens
from qkv.interp.patch import patch_heads, patch_residual, query_heads_moved

__all__ = [
    "FROZEN_SCALE_NOTE",
    "HeadAttribution",
    "ablate",
    "ablation_effects",
    "head_attribution",
    "logit_lens",
    "mean_z",
    "next_token_loss",
    "patch_heads",
    "patch_residual",
    "query_heads_moved",
]
