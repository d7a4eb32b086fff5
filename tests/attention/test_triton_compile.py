"""The kernels build for Ampere (sm80) and Hopper (sm90) without a GPU: Triton's front end,
LLVM and the bundled ptxas compile them offline (in a subprocess without TRITON_INTERPRET,
which changes what ``@triton.jit`` returns). Catches what the interpreter cannot: type errors
in compiled control flow, unsupported ops, shared memory beyond the device limit, lost
software pipelining."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
from qkv.attention.triton_kernels.offline import compile_offline
results = []
for kernel, arch, dtype, flags in json.loads(sys.argv[1]):
    options = {k: v for k, v in flags.items() if k not in ("num_warps", "num_stages")}
    tuning = {k: v for k, v in flags.items() if k in ("num_warps", "num_stages")}
    info = compile_offline(kernel, arch=arch, dtype=dtype, **tuning, **options)
    results.append(info)
print(json.dumps(results))
"""

# Device shared-memory limits per block (opt-in maximum), bytes.
SHARED_LIMIT = {80: 166912, 90: 232448}


def _compile(jobs: list) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(jobs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_kernel_builds_for_ampere_and_hopper_with_every_option():
    jobs = [(kernel, arch, "bf16", {}) for arch in (80, 90) for kernel in ("forward", "dkdv", "dq")]
    for info in _compile(jobs):
        assert info["shared"] > 0


def test_plain_forward_is_software_pipelined():
    """Constexpr head dims keep loads vectorisable; without that Triton emits no cp.async."""
    plain = {
        "HAS_TABLE": False, "MASK_KIND": 0, "HAS_ALIBI": False, "HAS_SOFTCAP": False,
        "HAS_LEFT": False, "HAS_KLEN": False, "D_K": 128, "D_V": 128,
        "BLOCK_DK": 128, "BLOCK_DV": 128, "BLOCK_M": 128, "BLOCK_N": 64,
    }  # fmt: skip
    (info,) = _compile([("forward", 80, "fp16", plain)])
    assert info["pipelined"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", [80, 90])
def test_some_config_of_each_kernel_fits_shared_memory(arch):
    """For head dims 64, 128, 256 (and 80, padded to 128), at least one autotune config per
    kernel compiles within the device's shared memory; fp32 (TF32) builds too. ~100 compiles:
    several minutes."""
    from qkv.attention.triton_kernels.configs import BACKWARD_CONFIGS, FORWARD_CONFIGS, prune

    jobs, index = [], []
    for dim, block in ((64, 64), (80, 128), (128, 128), (256, 256)):
        flags = {"D_K": dim, "D_V": dim, "BLOCK_DK": block, "BLOCK_DV": block, "HAS_TABLE": False}
        for kernel, configs in (
            ("forward", FORWARD_CONFIGS),
            ("dkdv", BACKWARD_CONFIGS),
            ("dq", BACKWARD_CONFIGS),
        ):
            for config in prune(configs, {}, **flags):
                tuning = {"num_warps": config.num_warps, "num_stages": config.num_stages}
                jobs.append((kernel, arch, "bf16", {**flags, **config.kwargs, **tuning}))
                index.append((kernel, dim))
    jobs += [(kernel, arch, "fp32", {}) for kernel in ("forward", "dkdv", "dq")]
    index += [(kernel, "fp32") for kernel in ("forward", "dkdv", "dq")]
    fits: dict[tuple, bool] = {}
    for key, info in zip(index, _compile(jobs)):
        fits[key] = fits.get(key, False) or info["shared"] <= SHARED_LIMIT[arch]
    assert all(fits.values()), [key for key, ok in fits.items() if not ok]
