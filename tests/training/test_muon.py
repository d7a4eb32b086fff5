"""Muon against references: Newton–Schulz against the SVD's U·Vᵀ (and torch.optim.Muon's own
iteration), a Muon step against the update written out from its definition, and a Muon +
AdamW run resumed from a checkpoint against the uninterrupted run."""

from pathlib import Path

import pytest
import torch
from torch import nn
from train_helpers import TINY

from qkv.training import trainer
from qkv.training.config import TrainConfig
from qkv.training.muon import CUBIC, Muon, MuonWithAdamW, hidden_matrices, newton_schulz
from qkv.training.optim import make_muon_adamw
from qkv.training.run_dir import plan_resume


def _svd_polar(matrix: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    return (u @ vh).float()


@pytest.mark.parametrize("shape", [(48, 48), (97, 33), (33, 97), (3, 128, 512)])
def test_cubic_newton_schulz_converges_to_the_svd_polar_factor(shape) -> None:
    torch.manual_seed(0)
    # Well conditioned (singular values in [0.5, 1]) so 40 cubic steps converge.
    matrix = torch.randn(*shape)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    matrix = u @ torch.diag_embed(torch.linspace(1.0, 0.5, s.shape[-1]).expand_as(s)) @ vh
    result = newton_schulz(matrix, steps=40, coefficients=CUBIC)
    expected = torch.stack([_svd_polar(m) for m in matrix.reshape(-1, *shape[-2:])])
    torch.testing.assert_close(result.reshape(expected.shape), expected, atol=1e-4, rtol=0)


def test_quintic_keeps_singular_vectors_and_bounds_singular_values() -> None:
    torch.manual_seed(1)
    matrix = torch.randn(96, 160)
    result = newton_schulz(matrix)  # 5 quintic steps: U·S'·Vᵀ, S' near 1
    u, _, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    inner = u.T @ result.double() @ vh.T  # diagonal S' when the singular vectors are kept
    off_diagonal = inner - torch.diag(torch.diagonal(inner))
    assert off_diagonal.abs().max() < 1e-3
    assert torch.diagonal(inner).min() > 0.6 and torch.diagonal(inner).max() < 1.25
    # torch's own Muon runs the same iteration in bf16: equal up to bf16 rounding.
    from torch.optim._muon import _zeropower_via_newtonschulz

    theirs = _zeropower_via_newtonschulz(matrix, (3.4445, -4.7750, 2.0315), 5, 1e-7)
    torch.testing.assert_close(result, theirs.float(), atol=0.05, rtol=0)


def test_muon_step_matches_its_definition() -> None:
    torch.manual_seed(2)
    weights = [nn.Parameter(torch.randn(64, 32)), nn.Parameter(torch.randn(64, 32))]
    start = [w.detach().clone() for w in weights]
    optimizer = Muon(weights, lr=0.1, lr_scale=0.5, momentum=0.9, weight_decay=0.01)
    buffers = [torch.zeros_like(w) for w in weights]
    for _ in range(3):
        grads = [torch.randn_like(w) for w in weights]
        for w, g in zip(weights, grads, strict=True):
            w.grad = g.clone()
        optimizer.step()
        for i, g in enumerate(grads):  # the reference update, one matrix at a time
            buffers[i] = 0.9 * buffers[i] + 0.1 * g
            nesterov = 0.1 * g + 0.9 * buffers[i]
            update = newton_schulz(nesterov) * (2.0**0.5)  # √(rows/cols) = √2
            start[i] = start[i] * (1 - 0.05 * 0.01) - 0.05 * update
    for w, expected in zip(weights, start, strict=True):
        torch.testing.assert_close(w.detach(), expected, atol=1e-5, rtol=1e-5)


def test_hidden_matrices_leave_embeddings_head_and_gains_to_adamw() -> None:
    import qkv

    model = qkv.models.build(qkv.models.preset("baby-gpt", vocab_size=65))
    muon, adamw = hidden_matrices(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(".h." in names[id(p)] and p.dim() == 2 for p in muon)
    assert len(muon) == 16  # 4 blocks × (qkv, attention out, MLP in, MLP out)
    assert {"transformer.wte.weight", "transformer.wpe.weight"} <= {names[id(p)] for p in adamw}
    optimizer = make_muon_adamw(model, lr=1e-3, muon_lr=0.02, weight_decay=0.1, betas=(0.9, 0.99))
    assert isinstance(optimizer, MuonWithAdamW) and len(optimizer.param_groups) == 3
    with pytest.raises(ValueError, match="not Muon \\+ AdamW"):
        optimizer.load_state_dict(torch.optim.AdamW(model.parameters()).state_dict())


def test_muon_run_resumes_bit_identically(corpus_file: Path, tmp_path: Path) -> None:
    fields = {**TINY, "data": str(corpus_file), "optimizer": "muon", "schedule": "trapezoid",
              "eval_interval": 4}  # fmt: skip
    whole = trainer.train(TrainConfig(**fields, max_iters=8), tmp_path / "whole", quiet=True)
    trainer.train(TrainConfig(**fields, max_iters=4), tmp_path / "part", quiet=True)
    config, checkpoint, run_dir = plan_resume(tmp_path / "part", {"max_iters": 8})
    resumed = trainer.train(config, run_dir, resume_from=checkpoint, quiet=True)
    assert resumed.final_loss == whole.final_loss and resumed.val_loss == whole.val_loss


def test_muon_config_is_validated() -> None:
    with pytest.raises(ValueError, match="optimizer must be"):
        TrainConfig(optimizer="sgd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="muon_lr"):
        TrainConfig(optimizer="muon", muon_lr=0)
    with pytest.raises(ValueError, match="does not shard"):
        TrainConfig(optimizer="muon", fsdp=True)
