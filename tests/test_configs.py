"""qkv.configs.Serialisable: exact JSON round trips, unknown fields refused by name, and
replace() validating again, for any kw_only dataclass built on it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from qkv.configs import Serialisable, check_choice, check_positive_int


@dataclass(kw_only=True)
class Sizes(Serialisable):
    width: int = 8
    kind: str = "a"
    note: str | None = None

    def __post_init__(self) -> None:
        check_positive_int(self, "width")
        check_choice(self, "kind", ("a", "b"))


def test_round_trip_through_json_is_exact() -> None:
    config = Sizes(width=3, kind="b", note="x")
    again = Sizes.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and type(again) is Sizes


def test_unknown_fields_are_named_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown Sizes field\(s\) \['wdth'\]; known fields: "
                       r"\['kind', 'note', 'width'\]"):  # fmt: skip
        Sizes.from_dict({"wdth": 3})


def test_replace_and_from_dict_validate() -> None:
    assert Sizes().replace(width=5).width == 5
    with pytest.raises(ValueError, match="Sizes.width must be a positive int, got 0"):
        Sizes().replace(width=0)
    with pytest.raises(ValueError, match="Sizes.kind must be one of 'a', 'b', got 'c'"):
        Sizes.from_dict({"kind": "c"})


def test_model_configs_share_the_base() -> None:
    from qkv.models import BertConfig, GPTConfig
    from qkv.models.config import Serialisable as reexported

    assert reexported is Serialisable
    assert issubclass(GPTConfig, Serialisable) and issubclass(BertConfig, Serialisable)
