"""Milliseconds per optimizer step of training configurations, interleaved in one run: what a
step costs at each batch size and with each optimizer on this CPU (forward, backward and
optimizer step of ``qkv.training.step.optimizer_step``; data sampling included).

Used to cost the `fast` preset's levers in units of the nanoGPT-style peer's step (batch 12,
AdamW); see ``benchmarks/results/train-cpu.md``.

    python benchmarks/train_steps.py "b12={}" "adamw48={'batch_size': 48}" \\
        "muon48={'batch_size': 48, 'optimizer': 'muon'}"
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train as bench  # noqa: E402  (the recipe lives beside this file)


def _session(data: Path, overrides: dict):
    from qkv.training import distributed as dist_utils
    from qkv.training.config import TrainConfig
    from qkv.training.prepare import build_model, prepare_data
    from qkv.training.session import open_session

    config = TrainConfig(**{**bench.RECIPE, "data": str(data), "model": "baby-gpt",
                            "progress": False, "plot": False, **overrides})  # fmt: skip
    prepared = prepare_data(config, quiet=True)
    model = build_model(config, prepared.tokenizer)
    out = Path(tempfile.mkdtemp(prefix="qkv-steps-")) / "run"
    out.mkdir()
    return open_session(config, out, dist_utils.Distributed(), data=prepared, raw_model=model)


def main(argv: list[str] | None = None) -> int:
    from qkv.bench.hardware import machine_line
    from qkv.training.step import optimizer_step

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", help="NAME={TrainConfig overrides as a dict}")
    parser.add_argument("--data", type=Path, default=bench.DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    args = parser.parse_args(argv)
    sessions = {}
    for variant in args.variants:
        name, _, literal = variant.partition("=")
        sessions[name] = _session(args.data, ast.literal_eval(literal or "{}"))
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.rounds):  # interleaved: every variant sees the same load
        for name, session in sessions.items():
            for _ in range(2):  # warm-up steps, untimed
                optimizer_step(session)
                session.step += 1
            start = time.perf_counter()
            for _ in range(args.steps):
                optimizer_step(session)
                session.step += 1
            times[name].append((time.perf_counter() - start) / args.steps * 1000)
    print(f"# {machine_line()}")
    print("| variant | ms/step (median) | rounds |\n| --- | ---: | --- |")
    for name, values in times.items():
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} | {rounds} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
