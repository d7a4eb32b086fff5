"""The capability probe and the precision ``auto`` picks from it, on monkeypatched CPUs and
GPUs (the probe's inputs: PyTorch's dispatch ISA, /proc/cpuinfo flags, CUDA capability)."""

import pytest
import torch

from qkv import hardware


def _cpu(monkeypatch: pytest.MonkeyPatch, isa: str, *flags: str) -> hardware.Capability:
    monkeypatch.setattr(hardware, "cpu_capability", lambda: isa)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", *flags}))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    return hardware.probe("cpu")


@pytest.mark.parametrize(
    ("isa", "flags", "name", "native"),
    [
        ("AVX2", (), "AVX2", False),
        # ATEN_CPU_CAPABILITY=avx2 on an AVX512-BF16 CPU: the kernels are AVX2 ones.
        ("AVX2", ("avx512f", "avx512_bf16"), "AVX2", False),
        ("AVX512", ("avx512f",), "AVX512", False),
        ("AVX512", ("avx512f", "avx512_bf16"), "AVX512-BF16", True),
        ("AVX512", ("avx512f", "avx512_bf16", "amx_bf16"), "AMX", True),
        ("DEFAULT", ("avx512_bf16",), "DEFAULT", False),
    ],
)
def test_cpu_capability_from_isa_and_flags(monkeypatch, isa, flags, name, native) -> None:
    capability = _cpu(monkeypatch, isa, *flags)
    assert (capability.device, capability.name, capability.native_bf16) == ("cpu", name, native)


def test_onednn_capped_below_avx512_is_not_native(monkeypatch) -> None:
    _cpu(monkeypatch, "AVX512", "avx512_bf16")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert hardware.probe("cpu").native_bf16 is False


@pytest.mark.parametrize(("major", "native"), [(7, False), (8, True), (9, True)])
def test_cuda_bf16_is_native_from_ampere(monkeypatch, major, native) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, 0))
    capability = hardware.probe("cuda")
    assert (capability.name, capability.native_bf16) == (f"sm{major}0", native)


def test_auto_is_fp32_on_avx2_and_bf16_where_native(monkeypatch) -> None:
    avx2 = _cpu(monkeypatch, "AVX2", "avx512_bf16")
    assert hardware.choose_precision("auto", avx2).dtype == "fp32"
    native = _cpu(monkeypatch, "AVX512", "avx512_bf16")
    chosen = hardware.choose_precision("auto", native)
    assert (chosen.dtype, chosen.warning, chosen.torch_dtype) == ("bf16", None, torch.bfloat16)


def test_explicit_bf16_without_native_support_warns_once_naming_capability_and_cost(
    monkeypatch,
) -> None:
    chosen = hardware.choose_precision("bf16", _cpu(monkeypatch, "AVX2"))
    assert chosen.dtype == "bf16"  # honoured, not overridden
    assert chosen.warning is not None and "\n" not in chosen.warning
    for words in ("AVX2", "no native bf16", "AVX512-BF16 or AMX", "emulated", "slower",
                  "--precision auto or fp32"):  # fmt: skip
        assert words in chosen.warning, words
    native = hardware.choose_precision("bf16", _cpu(monkeypatch, "AVX512", "avx512_bf16"))
    assert native.warning is None
    assert hardware.choose_precision("fp32", _cpu(monkeypatch, "AVX2")).warning is None


def test_unknown_precision_is_refused_with_the_choices() -> None:
    capability = hardware.Capability(device="cpu", name="AVX2", native_bf16=False)
    with pytest.raises(ValueError, match="auto, fp32, bf16.*'fp16'"):
        hardware.choose_precision("fp16", capability)


def test_record_names_capability_and_choice(monkeypatch) -> None:
    record = hardware.choose_precision("auto", _cpu(monkeypatch, "AVX2")).record()
    assert record == {
        "device": "cpu", "capability": "AVX2", "native_bf16": False,
        "precision_requested": "auto", "precision": "fp32",
    }  # fmt: skip
