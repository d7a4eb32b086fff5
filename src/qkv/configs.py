"""What every qkv config dataclass shares: JSON round trips and field validators.

Layer-neutral (no torch, no qkv imports), so model configs (``qkv.models.config``) and the
training config (``qkv.training.config``) build on the same base without importing each
other.

Example::

    >>> @dataclass(kw_only=True)
    ... class Sizes(Serialisable):
    ...     width: int = 8
    ...     def __post_init__(self) -> None:
    ...         check_positive_int(self, "width")
    >>> Sizes.from_dict({"width": 4}).to_dict()
    {'width': 4}
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self


class Serialisable:
    """``to_dict`` / ``from_dict`` / ``replace`` for a dataclass of JSON-serialisable values.

    ``from_dict`` refuses unknown fields, naming them and the known ones, so a typo in a
    saved config fails loudly instead of being dropped.
    """

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable when the fields are)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from :meth:`to_dict` output (validated by the class's ``__post_init__``)."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} field(s) {unknown}; known fields: {sorted(names)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def check_positive_int(config: object, name: str) -> None:
    """ValueError unless ``config.<name>`` is an int ≥ 1 (bools refused)."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{type(config).__name__}.{name} must be a positive int, got {value!r}")


def check_choice(config: object, name: str, allowed: tuple[str, ...]) -> None:
    """ValueError unless ``config.<name>`` is one of ``allowed``."""
    value = getattr(config, name)
    if value not in allowed:
        raise ValueError(
            f"{type(config).__name__}.{name} must be one of {', '.join(map(repr, allowed))}, "
            f"got {value!r}"
        )


def check_fraction(config: object, name: str) -> None:
    """ValueError unless ``config.<name>`` is a number in [0, 1) (a dropout probability)."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{type(config).__name__}.{name} must be in [0, 1), got {value!r}")


def check_positive_float(config: object, name: str) -> None:
    """ValueError unless ``config.<name>`` is a number > 0."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{type(config).__name__}.{name} must be a positive number, got {value!r}")
