#!/usr/bin/env bash
# The one-shot GPU check (issue #16): on a fresh CUDA machine with a copy of this repo,
#   1. install what is missing, from the project's own files (torch as the README pins it,
#      then `pip install -e ".[triton]" pytest`); a machine that already imports torch with
#      CUDA, triton, pytest and qkv's dependencies installs nothing (machines without internet);
#   2. run the gpu tests (tests/attention/test_gpu.py: triton vs reference over the variant
#      grid, deterministic backward, the auto-vs-SDPA table), one Triton config per kernel
#      (QKV_TRITON_AUTOTUNE=0) so that compiling stays within budget;
#   3. run benchmarks/attention_gpu.py (N = 1k, 4k, 16k; d = 64, 128; causal and not; bf16;
#      triton beside SDPA's best backend and FlexAttention, with the measured matmul ceiling;
#      then window / ALiBi / softcap vs FlexAttention at N = 8k), autotuned.
# Everything lands in one folder: $OUT if set, else results/gpu-<UTC date-time>:
#   summary.md (machine, each step's exit status and seconds), install.log, gpu-tests.log,
#   gpu-tests.xml (junit), auto-vs-sdpa.md, attention-gpu.md, attention-gpu.log.
# Budget: under 8 minutes on an H200. Every step runs under a timeout taken from what is left
# of QKV_GPU_CHECK_BUDGET_S (default 470 s), so the folder is always written in time; a step
# cut short says so in summary.md.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run    # the same steps, tiny, on CPU (TRITON_INTERPRET=1)
#   QKV_GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=${QKV_GPU_CHECK_DRY:-0}
[[ "${1:-}" == "--dry-run" ]] && DRY=1
OUT_DIR=${OUT:-results/gpu-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$OUT_DIR"
SUMMARY=$OUT_DIR/summary.md
BUDGET=${QKV_GPU_CHECK_BUDGET_S:-470}
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
# The torch version the README installs (`pip install torch==X`).
TORCH_VERSION=$(sed -n 's/.*pip install torch==\([0-9][0-9.]*\).*/\1/p' README.md | head -1)

if [[ $DRY == 1 ]]; then
    export TRITON_INTERPRET=1 QKV_GPU_TEST_DEVICE=cpu
    BUDGET=${QKV_GPU_CHECK_BUDGET_S:-1500}  # the interpreter on a few CPU cores is slow
    MODE="dry run (CPU, Triton interpreter)"
else
    export TRITON_INTERPRET=0 QKV_GPU_TEST_DEVICE=cuda
    MODE="GPU"
fi

{
    echo "# GPU check, $MODE"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M') UTC; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?');" \
        "budget ${BUDGET} s; README torch ${TORCH_VERSION:-?}"
    echo
    echo "| step | exit | seconds | note |"
    echo "| --- | ---: | ---: | --- |"
} >"$SUMMARY"

FAILED=0
# step NAME SHARE_S LOG CMD...: run CMD under a timeout of min(SHARE_S, time left - 10 s);
# SHARE_S is for the 470 s GPU budget and scales with QKV_GPU_CHECK_BUDGET_S.
step() {
    local name=$1 share=$(($2 * BUDGET / 470)) log=$3
    shift 3
    local left=$((BUDGET - SECONDS - 10))
    local limit=$((share < left ? share : left))
    if ((limit < 5)); then
        echo "| $name | – | 0 | skipped: no time left in the budget |" >>"$SUMMARY"
        FAILED=1
        return
    fi
    local start=$SECONDS rc note=""
    echo "== $name (timeout ${limit}s)" | tee -a "$log"
    timeout --signal=INT --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    if ((rc == 124 || rc == 130 || rc == 137)); then note="cut at ${limit} s (budget)"; fi
    ((rc != 0)) && FAILED=1
    echo "| $name | $rc | $((SECONDS - start)) | $note |" >>"$SUMMARY"
}

# 1. install what is missing
have_everything() {
    "$PYTHON" - "$DRY" <<'EOF' 2>/dev/null
import sys
import torch, pytest, qkv  # noqa: F401  (qkv's own imports pull its dependencies)
import triton  # noqa: F401
if sys.argv[1] != "1":
    assert torch.cuda.is_available(), "no CUDA"
EOF
}
if have_everything; then
    echo "| install | 0 | 0 | nothing missing |" >>"$SUMMARY"
else
    step install 240 "$OUT_DIR/install.log" bash -c \
        "$PYTHON -m pip install 'torch==${TORCH_VERSION}' && $PYTHON -m pip install -e '.[triton]' 'pytest>=8'"
fi
MACHINE=$("$PYTHON" -c 'import torch
from qkv.bench.hardware import machine_line
print(machine_line("cuda" if torch.cuda.is_available() else "cpu"))')

# 2. the gpu tests
step gpu-tests 240 "$OUT_DIR/gpu-tests.log" env QKV_TRITON_AUTOTUNE=0 QKV_GPU_RESULTS="$OUT_DIR" \
    "$PYTHON" -m pytest -m gpu tests/attention/test_gpu.py -q -rs -p no:cacheprovider \
    --junitxml="$OUT_DIR/gpu-tests.xml" ${QKV_GPU_CHECK_PYTEST_ARGS:-}

# 3. the benchmark (autotuned); the dry run makes it tiny itself
if [[ $DRY == 1 ]]; then
    BENCH_ARGS=(--dry-run)
else
    BENCH_ARGS=(--sizes 1024,4096,16384 --dims 64,128 --variants-n 8192)
fi
step attention-gpu 400 "$OUT_DIR/attention-gpu.log" \
    "$PYTHON" benchmarks/attention_gpu.py "${BENCH_ARGS[@]}" --out "$OUT_DIR/attention-gpu.md"

echo "| total | $FAILED | $SECONDS | |" >>"$SUMMARY"
printf '\nMachine: %s.\n' "${MACHINE:-unknown (python failed)}" >>"$SUMMARY"
echo
cat "$SUMMARY"
echo "results: $OUT_DIR"
exit $FAILED
