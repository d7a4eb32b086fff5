"""TrainConfig validation and the flags generated from it."""

import argparse
import dataclasses

import pytest

from qkv.training.config import TrainConfig, add_config_flags, config_from_args, given_flags


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return parser


def test_every_field_is_a_flag_with_its_type() -> None:
    parser = _parser()
    flags = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(TrainConfig):
        assert f.name in flags, f.name
        assert f.metadata["help"] in flags[f.name].help
    args = parser.parse_args(
        ["--batch-size", "24", "--lr", "2e-3", "--tokenizer", "bpe", "--bf16", "--no-progress",
         "--n-layer", "2"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.batch_size, config.lr, config.tokenizer) == (24, 2e-3, "bpe")
    assert config.bf16 is True and config.progress is False and config.n_layer == 2
    assert config.max_iters == TrainConfig().max_iters
    assert given_flags(args) == {
        "batch_size": 24, "lr": 2e-3, "tokenizer": "bpe", "bf16": True, "progress": False,
        "n_layer": 2,
    }  # fmt: skip


def test_bad_flag_values_are_refused() -> None:
    parser = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--tokenizer", "word"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--batch-size", "many"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"min_lr": 1.0}, "min_lr=1.0 exceeds lr"),
        ({"dropout": 1.5}, "dropout"),
        ({"device": "tpu"}, "device"),
        ({"lr": float("nan")}, "lr must be a finite number"),
    ],
)
def test_validation(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_round_trip() -> None:
    config = TrainConfig(batch_size=4, data="x.txt")
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"batchsize": 3})
