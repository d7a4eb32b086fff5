"""The child processes of ``benchmarks/model_families.py``: each measurement runs in a fresh
process so its memory peak and its load time are its own. Each child prints one JSON line.

``make FOLDER [--quick]``            random-weight checkpoints (transformers ``save_pretrained``,
                                     safetensors, bf16 as the real ones) at the real shapes
``decode FOLDER NEW REPEATS``        qkv.generate vs transformers generate, fp32 then bf16
``load LIB FOLDER``                  wall time and peak RSS of one load (LIB qkv or hf)
``prefill LIB FOLDER N``             peak RSS of one prefill of N tokens (LIB qkv, eager, sdpa)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

# Real shapes (config.json of the hub checkpoints), random weights.
SHAPES = {
    "SmolLM2-135M": dict(
        model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
        max_position_embeddings=2048, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "Qwen2.5-0.5B": dict(
        model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
        num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
        max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, use_sliding_window=False,
    ),
    # Gemma-2-2B's attention (8 heads / 4 kv, head_dim 256, soft-cap 50, window 4096 on
    # alternate layers) in two layers, one sliding and one global; a small MLP and vocab.
    "Gemma-2-attention": dict(
        model_type="gemma2", vocab_size=256, hidden_size=2304, intermediate_size=512,
        num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
        max_position_embeddings=8192, sliding_window=4096, attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0, query_pre_attn_scalar=256, rope_theta=10000.0,
        layer_types=["sliding_attention", "full_attention"], tie_word_embeddings=True,
    ),
}  # fmt: skip


def rss() -> int:
    """Resident set size of this process, bytes (from /proc, valid for torch's allocator)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples this process's RSS every millisecond in a thread; ``peak`` is the largest."""

    def __enter__(self) -> PeakRSS:
        self.peak, self._stop = rss(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def make(folder: Path, quick: bool) -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    for name, fields in SHAPES.items():
        fields = dict(fields)
        if quick and name != "Gemma-2-attention":
            fields["num_hidden_layers"] = 4
        config = transformers.AutoConfig.for_model(**fields)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(folder / name, safe_serialization=True)
        del model
    print(json.dumps({"made": sorted(SHAPES)}))


def _weights_read_per_token(model: torch.nn.Module, context: int) -> int:
    """Bytes one decode step reads: every weight once (a tied embedding is the head) and the
    KV cache of ``context`` positions."""
    c = model.config
    unique = {id(p): p for p in model.parameters()}
    size = sum(p.numel() * p.element_size() for p in unique.values())
    wte = model.transformer["wte"].weight
    if not c.tie_embeddings:  # the lookup reads one row of the table
        size -= wte.numel() * wte.element_size() - wte.shape[1] * wte.element_size()
    return size + 2 * c.n_layer * context * c.n_kv_head * c.head_dim * 4  # fp32 cache


def decode(folder: Path, new: int, repeats: int) -> None:
    import transformers

    import qkv
    from models import _decode_stats, _run_hf, _run_qkv
    from qkv.generation import release_decode_layout
    from qkv.generation.decode_layout import describe_layout

    transformers.logging.set_verbosity_error()
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    model = qkv.load(folder, dtype=torch.float32)
    prompt = torch.randint(0, model.config.vocab_size, (1, 16), generator=torch.Generator())
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        release_decode_layout(model)
        model, hf = model.to(dtype), hf.to(dtype)
        runs: dict[str, list[tuple[float, float]]] = {"qkv": [], "hf": []}
        with torch.inference_mode():
            _run_qkv(model, prompt, 2), _run_hf(hf, prompt, 2)  # warm up, make the copies
            for _ in range(repeats):  # interleaved: both see the same machine state
                start, stamps, ours = _run_qkv(model, prompt, new)
                runs["qkv"].append(_decode_stats(start, stamps))
                start, stamps, theirs = _run_hf(hf, prompt, new)
                runs["hf"].append(_decode_stats(start, stamps))
        agree = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
        rows.append(
            {
                "dtype": str(dtype).removeprefix("torch."),
                "step": {k: statistics.median(r[0] for r in v) for k, v in runs.items()},
                "total": {k: statistics.median(r[1] for r in v) for k, v in runs.items()},
                "bytes": _weights_read_per_token(model, 16 + new // 2),
                "agree": "identical tokens" if agree is None else f"tokens agree up to {agree}",
                "layout": describe_layout(model),
            }
        )
    print(json.dumps(rows))


def _page_sample(tensor: torch.Tensor) -> torch.Tensor:
    """One int16 of every 4 KiB of ``tensor``'s bytes (reading it faults every page in)."""
    raw = tensor.detach().contiguous().view(-1).view(torch.uint8)
    return raw[: raw.numel() // 2 * 2].view(torch.int16)[::2048].long()


def load(library: str, folder: Path) -> None:
    import qkv.io  # imported before the clock starts, as the peer's modeling module is

    if library == "hf":
        import transformers

        transformers.logging.set_verbosity_error()
        from transformers.models.qwen2 import modeling_qwen2  # noqa: F401
    before = rss()
    with PeakRSS() as probe:
        start = time.perf_counter()
        if library == "qkv":
            model = qkv.load(folder)
        else:
            model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
        seconds = time.perf_counter() - start
        # Read every weight once, so lazily mapped pages cannot hide memory or time.
        unique = {id(p): p for p in model.parameters()}.values()
        checksum = sum(int(_page_sample(p).sum()) for p in unique)
        first_read = time.perf_counter() - start - seconds
    weights = sum(p.numel() * p.element_size() for p in unique)
    peak = max(probe.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    print(json.dumps({"seconds": seconds, "first_read": first_read, "peak": peak - before,
                      "weights": weights,
                      "dtype": dtype, "checksum": checksum}))  # fmt: skip


def prefill(library: str, folder: Path, n: int) -> None:
    import transformers

    import qkv

    transformers.logging.set_verbosity_error()
    ids = torch.randint(0, 256, (1, n), generator=torch.Generator().manual_seed(1))
    try:
        if library == "qkv":
            model = qkv.load(folder, dtype=torch.float32)
        else:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, attn_implementation=library
            ).eval()
    except (ValueError, RuntimeError) as error:  # transformers refusing an implementation
        print(json.dumps({"refused": str(error).splitlines()[0][:160]}))
        return
    with torch.inference_mode():
        before = rss()
        with PeakRSS() as probe:
            start = time.perf_counter()
            if library == "qkv":
                logits = model(ids, last_only=True)
            else:
                logits = model(ids, logits_to_keep=1, use_cache=False).logits
            seconds = time.perf_counter() - start
    print(json.dumps({"peak": probe.peak - before, "seconds": seconds,
                      "logits": logits[0, -1].tolist()}))  # fmt: skip


def main(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "make":
        make(Path(rest[0]), "--quick" in rest)
    elif kind == "decode":
        decode(Path(rest[0]), int(rest[1]), int(rest[2]))
    elif kind == "load":
        load(rest[0], Path(rest[1]))
    elif kind == "prefill":
        prefill(rest[0], Path(rest[1]), int(rest[2]))
    else:
        raise SystemExit(f"unknown child {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
