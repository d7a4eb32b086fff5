"""The trainer's parts used on their own, as a fine-tuning recipe would: a session around a
given model, a run over it, and the checkpointer's refusal to save non-finite weights."""

from pathlib import Path

import pytest
import torch
from train_helpers import TINY

import qkv
from qkv.training import distributed as dist_utils
from qkv.training.checkpointer import Checkpointer
from qkv.training.config import TrainConfig
from qkv.training.errors import TrainingError
from qkv.training.prepare import build_model, prepare_data
from qkv.training.session import open_session
from qkv.training.trainer import run


def _session(corpus: Path, out_dir: Path, **changes: object):
    config = TrainConfig(**{**TINY, "data": str(corpus), **changes})
    data = prepare_data(config, quiet=True)
    model = build_model(config, data.tokenizer)
    out_dir.mkdir()
    env = dist_utils.Distributed()
    return open_session(config, out_dir, env, data=data, raw_model=model)


def test_a_given_model_with_frozen_parameters_trains_only_the_rest(
    corpus_file: Path, tmp_path: Path
) -> None:
    session = _session(corpus_file, tmp_path / "run", max_iters=6, eval_interval=3)
    frozen = dict(session.raw_model.named_parameters())["transformer.wte.weight"]
    # The optimizer was made before freezing: freezing by requires_grad alone must suffice.
    frozen.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in session.raw_model.named_parameters()}
    result = run(session, Checkpointer(session, resumed=False), quiet=True)
    assert result.step == 6 and result.checkpoint is not None
    after = dict(session.raw_model.named_parameters())
    assert torch.equal(after["transformer.wte.weight"], before["transformer.wte.weight"])
    changed = [n for n in before if not torch.equal(after[n], before[n])]
    assert changed and "transformer.wte.weight" not in changed
    saved = qkv.load(result.checkpoint)  # the checkpoint holds the session's weights
    for name, tensor in saved.state_dict().items():
        assert torch.equal(tensor, session.raw_model.state_dict()[name]), name


def test_checkpointer_refuses_non_finite_weights(corpus_file: Path, tmp_path: Path) -> None:
    session = _session(corpus_file, tmp_path / "run")
    checkpointer = Checkpointer(session, resumed=False)
    assert checkpointer.save(1, 2.5).step == 1 and checkpointer.best.val_loss == 2.5
    with torch.no_grad():
        next(session.raw_model.parameters())[0].fill_(float("nan"))
    with pytest.raises(TrainingError, match="is not finite at step 2; not saved"):
        checkpointer.save(2, 1.0)
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-00000001"]
    assert checkpointer.best.step == 1
