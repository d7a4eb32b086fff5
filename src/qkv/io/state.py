"""Putting a checked state dict into a model: name/shape validation with errors that name the
file and the tensor, a meta-device build (no wasted random init), and re-tying shared weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

StateDict = dict[str, Tensor]


def _listing(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_state(
    found: StateDict,
    expected: dict[str, tuple[int, ...]],
    *,
    source: Path | str,
    what: str,
    ignored: Callable[[str], bool] = lambda name: False,
    optional: Callable[[str], bool] = lambda name: False,
) -> None:
    """Raise ValueError naming ``source`` when ``found`` lacks a tensor of ``expected``, holds one
    it should not, or holds one of another shape. ``what`` describes the model for the message.
    """
    for name, shape in expected.items():
        if name in found and tuple(found[name].shape) != tuple(shape):
            raise ValueError(
                f"{source}: tensor {name!r} has shape {tuple(found[name].shape)} but {what} "
                f"expects {tuple(shape)}; the weights do not match config.json"
            )
    missing = [n for n in expected if n not in found and not optional(n)]
    if missing:
        raise ValueError(
            f"{source}: missing tensor(s) {_listing(missing)} that {what} needs; the file is "
            "incomplete or belongs to another architecture"
        )
    unexpected = [n for n in found if n not in expected and not ignored(n)]
    if unexpected:
        raise ValueError(
            f"{source}: unexpected tensor(s) {_listing(unexpected)} that {what} does not have; "
            "the file belongs to another architecture or config"
        )


def shapes(state: StateDict) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in state.items()}


def build_empty(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build a model on the meta device: parameters have shapes but no memory or init cost.

    ``torch.nn.init``'s functions are no-ops meanwhile: on meta tensors they would do nothing
    useful, yet the first one imports ``torch._dynamo`` (measured 3.4 s of a 3.5 s
    ``qkv.load`` on 2026-12-02), the weights being overwritten anyway."""
    with torch.device("meta"), _init_skipped():
        return factory()


@contextmanager
def _init_skipped() -> Iterator[None]:
    """Replace every in-place initialiser of ``torch.nn.init`` with one returning its tensor."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {name: getattr(nn.init, name) for name in names}

    def skip(tensor: Tensor, *args: object, **kwargs: object) -> Tensor:
        return tensor

    try:
        for name in names:
            setattr(nn.init, name, skip)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def alias_groups(model: nn.Module) -> list[list[str]]:
    """Names sharing one Parameter (tied weights), first name first, for each shared tensor."""
    groups: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def unique_state(model: nn.Module) -> tuple[StateDict, dict[str, str]]:
    """The state dict without tied duplicates, and {alias: kept name} for the dropped ones."""
    state = model.state_dict()
    aliases = {alias: names[0] for names in alias_groups(model) for alias in names[1:]}
    return {n: t for n, t in state.items() if n not in aliases}, aliases


def assign(model: nn.Module, state: StateDict, factory: Callable[[], nn.Module]) -> nn.Module:
    """Load ``state`` (qkv names, already checked) into the meta-built ``model`` by assignment,
    then re-tie shared parameters. Falls back to a real build when the model holds meta
    buffers that no state dict fills (so a model with computed buffers still loads)."""
    groups = alias_groups(model)
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = factory()
        model.load_state_dict(state, strict=True)
        return model
    for names in groups:
        source = model.get_parameter(names[0])
        for alias in names[1:]:
            owner, _, attribute = alias.rpartition(".")
            setattr(model.get_submodule(owner), attribute, source)
    return model


_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "float64": torch.float64, "fp64": torch.float64,
}  # fmt: skip


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A floating torch.dtype from a dtype or its name ("bf16", "float32", ...)."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        key = dtype.removeprefix("torch.").lower()
        if key in _DTYPES:
            return _DTYPES[key]
    elif isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    raise ValueError(
        f"dtype must be a floating torch.dtype or one of {sorted(_DTYPES)}, got {dtype!r}"
    )


def finish(
    model: nn.Module, dtype: torch.dtype | str | None, device: str | torch.device
) -> nn.Module:
    """Cast, move and put in eval mode (dropout off): a loaded model is ready for inference."""
    parsed = parse_dtype(dtype)
    if parsed is not None:
        model = model.to(dtype=parsed)
    return model.to(device=device).eval()
