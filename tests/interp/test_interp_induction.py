"""Ground truth: on the induction experiment's model, trained here, the heads that the
attention scores call induction heads are the ones ablation and patching find.

Training takes a few CPU minutes (1,500 steps), hence ``slow``. What it showed when written
(seed 0, 2026-12-02): layer 1 grew two induction heads (scores 0.98 and 0.99); zero-ablating
both sent the repeated-half loss from 0.18 past chance (ln 63 = 4.14) to 8.4, while ablating
the other two layer-1 heads left it at 0.18; patching a head from a run whose second half no
longer repeats the first moved the loss most at an induction head.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from qkv import interp
from qkv.experiments.induction import InductionConfig, half_losses, make_batch, run_experiment


@pytest.mark.slow
def test_ablation_and_patching_find_the_induction_heads(tmp_path: Path) -> None:
    config = InductionConfig(eval_every=500)
    result = run_experiment(tmp_path, steps=1500, seed=0, config=config, plot=False, html=False)
    import qkv

    model = qkv.load(tmp_path / "model").eval()
    scores = torch.tensor(result.history[-1]["induction"])  # (L, H)
    induction = [tuple(map(int, pair)) for pair in (scores > 0.5).nonzero()]
    others = [(1, head) for head in range(config.n_head) if (1, head) not in induction]
    assert induction and others, scores
    ids = make_batch(config, 16, torch.Generator().manual_seed(7))

    def repeated_half_loss(logits: torch.Tensor) -> torch.Tensor:
        return half_losses(logits, ids, config.period)[1]

    chance = math.log(config.vocab_size - 1)
    with torch.no_grad():
        base = float(repeated_half_loss(model(ids)))
        without = float(repeated_half_loss(interp.ablate(model, ids, heads=induction)))
        without_others = float(repeated_half_loss(interp.ablate(model, ids, heads=others)))
    assert base < 0.5 * chance
    assert without > base + 0.75 * (chance - base)  # towards chance (or past it)
    assert without_others < base + 0.1 * (chance - base)

    corrupt = ids.clone()  # the second half no longer repeats the first
    corrupt[:, 1 + config.period :] = make_batch(config, 16, torch.Generator().manual_seed(8))[
        :, 1 + config.period :
    ]
    effect = interp.patch_heads(model, ids, corrupt, repeated_half_loss)  # (L, H)
    first = divmod(int(effect.argmax()), config.n_head)
    assert first in induction, (first, induction, effect)
