"""The induction-head experiment: train a tiny 2-layer GPT on repeated random sequences and
watch an induction head form.

Each training sequence is ``<bos>`` then a block of ``period`` random tokens, twice. The first
block cannot be predicted; the second can, by a two-layer circuit (Olsson et al. 2022): a
previous-token head in layer 0 writes "the token before me" into each position, and an
induction head in layer 1 matches the current token against it and attends to key
i - period + 1, the token that followed the previous occurrence, copying it. The experiment
logs the loss on each half and the induction score of every head as training runs; the
moment the second-half loss drops is the moment an induction score jumps.

The sequences, the model and the tokenizer are in :mod:`qkv.experiments.induction_task`; this
module trains, measures and writes the results. Runs on the CPU in a few minutes with the
defaults. Example::

    >>> from qkv.experiments.induction import run_experiment
    >>> result = run_experiment("runs/induction", steps=1500, seed=0)
    >>> result.best_head, result.final_induction  # e.g. (1, 2), 0.9
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from qkv.atomic import write_text_atomic
from qkv.experiments.induction_task import (
    BOS,
    InductionConfig,
    build_model,
    make_batch,
    word_tokenizer,
)
from qkv.viz.heads import duplicate_token_score, induction_score, previous_token_score

__all__ = [
    "BOS",
    "InductionConfig",
    "InductionResult",
    "build_model",
    "evaluate",
    "half_losses",
    "make_batch",
    "plot_history",
    "run_experiment",
    "word_tokenizer",
]


@dataclass(kw_only=True)
class InductionResult:
    """What the experiment measured and wrote.

    ``history``: one entry per evaluation with step, loss_first_half, loss_second_half,
    accuracy_second_half and the (L, H) induction / previous-token / duplicate-token scores
    as nested lists. ``best_layer``/``best_head``: the head with the highest final induction
    score.
    """

    config: dict[str, Any]
    steps: int
    seed: int
    seconds: float
    history: list[dict[str, Any]]
    best_layer: int
    best_head: int
    final_induction: float
    initial_induction: float
    final_loss_second_half: float
    out_dir: Path
    files: dict[str, str] = field(default_factory=dict)

    @property
    def best(self) -> tuple[int, int]:
        return self.best_layer, self.best_head

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return data


def half_losses(logits: Tensor, ids: Tensor, period: int) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy of predicting the first block, the second block, and second-block accuracy.

    Position t predicts token t + 1; targets 1..period are the first block (unpredictable),
    period+1..2·period the second (predictable by copying).
    """
    predictions = logits[:, :-1]  # (B, T-1, V)
    targets = ids[:, 1:]  # (B, T-1)
    loss = torch.nn.functional.cross_entropy(
        predictions.transpose(1, 2), targets, reduction="none"
    )  # (B, T-1)
    first, second = loss[:, : period - 1], loss[:, period:]
    correct = (predictions[:, period:].argmax(-1) == targets[:, period:]).float()
    return first.mean(), second.mean(), correct.mean()


def evaluate(model: Any, ids: Tensor, period: int) -> dict[str, Any]:
    """Losses and per-head scores (L, H) on held-out sequences ``ids`` (S, T)."""
    from qkv.nn import record_attention

    was_training = model.training
    model.eval()
    with torch.no_grad(), record_attention(model) as records:
        logits = model(ids)
    if was_training:
        model.train()
    weights = torch.stack([r.weights.float() for r in records])  # (L, S, H, T, T)
    first, second, accuracy = half_losses(logits, ids, period)

    def mean_over_sequences(score: Tensor) -> list[list[float]]:
        return score.mean(dim=1).tolist()  # (L, H)

    return {
        "loss_first_half": float(first),
        "loss_second_half": float(second),
        "accuracy_second_half": float(accuracy),
        "induction": mean_over_sequences(induction_score(weights, period=period, start=1)),
        "previous_token": mean_over_sequences(previous_token_score(weights, start=1)),
        "duplicate_token": mean_over_sequences(
            duplicate_token_score(weights, period=period, start=1)
        ),
    }


def run_experiment(
    out_dir: str | os.PathLike[str],
    *,
    steps: int = 1500,
    seed: int = 0,
    config: InductionConfig | None = None,
    plot: bool = True,
    html: bool = True,
    progress: bool = False,
) -> InductionResult:
    """Train the tiny GPT for ``steps`` steps, measuring induction scores as it learns.

    Writes into ``out_dir``: ``model/`` (qkv checkpoint + tokenizer: open it with ``qkv show
    "t5 t9 … t5 t9 …" --model out_dir/model``), ``history.json``, ``induction.png`` (loss and
    per-head induction score against steps) when ``plot``, ``induction.html`` (the interactive
    viewer on a held-out sequence; the induction head is the one to look at) and
    ``grid.png`` when ``html`` and the viewer is available. Returns :class:`InductionResult`.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    config = config or InductionConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    # One thread: this model is too small to gain from more, and on a busy machine more
    # threads made each step 10× slower (measured 2026-11-24: 65 ms vs 640 ms on 2 cores).
    torch.set_num_threads(1)
    try:
        return _run(
            out, steps=steps, seed=seed, config=config, plot=plot, html=html, progress=progress
        )
    finally:
        torch.set_num_threads(threads)


def _run(
    out: Path,
    *,
    steps: int,
    seed: int,
    config: InductionConfig,
    plot: bool,
    html: bool,
    progress: bool,
) -> InductionResult:
    torch.manual_seed(seed)
    train_gen = torch.Generator().manual_seed(seed)
    eval_ids = make_batch(config, config.eval_sequences, torch.Generator().manual_seed(seed + 1))
    model = build_model(config)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = min(100, max(steps // 10, 1))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    history = [{"step": 0, **evaluate(model, eval_ids, config.period)}]
    start = time.perf_counter()
    for step in range(1, steps + 1):
        period = int(torch.randint(config.min_period, config.period + 1, (1,), generator=train_gen))
        ids = make_batch(config, config.batch_size, train_gen, period)  # (B, 1 + 2·period)
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, config.vocab_size), ids[:, 1:].reshape(-1)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % config.eval_every == 0 or step == steps:
            entry = {
                "step": step,
                "train_loss": loss.item(),
                **evaluate(model, eval_ids, config.period),
            }
            history.append(entry)
            if progress:
                best = max(max(row) for row in entry["induction"])
                print(
                    f"step {step:5d}  loss first half {entry['loss_first_half']:.3f}  "
                    f"second half {entry['loss_second_half']:.3f}  best induction {best:.3f}",
                    flush=True,
                )
    seconds = time.perf_counter() - start
    model.eval()
    final = torch.tensor(history[-1]["induction"])  # (L, H)
    flat = int(final.argmax())
    best_layer, best_head = divmod(flat, final.shape[1])
    result = InductionResult(
        config=asdict(config),
        steps=steps,
        seed=seed,
        seconds=seconds,
        history=history,
        best_layer=best_layer,
        best_head=best_head,
        final_induction=float(final.max()),
        initial_induction=float(torch.tensor(history[0]["induction"]).max()),
        final_loss_second_half=history[-1]["loss_second_half"],
        out_dir=out,
    )
    _write_outputs(model, config, eval_ids, result, plot=plot, html=html)
    return result


def _write_outputs(
    model: Any,
    config: InductionConfig,
    eval_ids: Tensor,
    result: InductionResult,
    *,
    plot: bool,
    html: bool,
) -> None:
    from qkv.io import save

    out = result.out_dir
    tokenizer = word_tokenizer(config.vocab_size)
    save(model, out / "model", tokenizer=tokenizer)
    result.files["model"] = str(out / "model")
    if plot:
        from qkv.viz.heatmap import save_png

        save_png(plot_history(result), out / "induction.png")
        result.files["plot"] = str(out / "induction.png")
    if html:
        from qkv.viz.capture import capture_ids
        from qkv.viz.heatmap import plot_grid, save_png

        ids = eval_ids[0].tolist()
        cap = capture_ids(
            model,
            ids,
            tokens=tokenizer.tokens(ids),
            special=[i == BOS for i in ids],
            model_name=f"induction GPT (best head L{result.best_layer}H{result.best_head})",
        )
        figure = plot_grid(cap.weights, cap.tokens, layer=result.best_layer, head=result.best_head)
        save_png(figure, out / "grid.png")
        result.files["grid"] = str(out / "grid.png")
        try:
            from qkv.viz.html import write_html
        except ImportError:
            write_html = None
        if write_html is not None:
            title = (
                f"Induction head: layer {result.best_layer}, head {result.best_head} "
                f"(induction score {result.final_induction:.2f})"
            )
            write_html(cap, out / "induction.html", title=title)
            result.files["html"] = str(out / "induction.html")
    write_text_atomic(out / "history.json", json.dumps(result.to_json_dict(), indent=1))
    result.files["history"] = str(out / "history.json")


def plot_history(result: InductionResult) -> Any:
    """Loss of each half, every head's induction score and the layer-0 previous-token scores
    (the first half of the circuit) against training steps."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in result.history]
    fig, (left, right, below) = plt.subplots(1, 3, figsize=(16, 4.2))
    left.plot(steps, [h["loss_first_half"] for h in result.history], label="first block (random)")
    left.plot(steps, [h["loss_second_half"] for h in result.history], label="second block (repeat)")
    left.axhline(
        math.log(result.config["vocab_size"] - 1),
        color="grey",
        ls=":",
        lw=1,
        label="log(vocab): chance",
    )
    left.set_xlabel("training step")
    left.set_ylabel("cross-entropy (nats)")
    left.set_title("loss on held-out sequences")
    left.legend(fontsize=8)
    scores = torch.tensor([h["induction"] for h in result.history])  # (E, L, H)
    layers, heads = scores.shape[1:]
    for layer in range(layers):
        for head in range(heads):
            best = (layer, head) == result.best
            right.plot(
                steps,
                scores[:, layer, head].tolist(),
                lw=2.5 if best else 1,
                ls="-" if layer == layers - 1 else "--",
                label=f"L{layer}H{head}" + (" (induction head)" if best else ""),
            )
    previous = torch.tensor([h["previous_token"] for h in result.history])  # (E, L, H)
    for head in range(heads):
        below.plot(steps, previous[:, 0, head].tolist(), label=f"L0H{head}")
    below.set_ylim(0, 1)
    below.set_xlabel("training step")
    below.set_ylabel("previous-token score")
    below.set_title("layer 0: attention from i to key i - 1")
    below.legend(fontsize=7)
    right.set_ylim(0, 1)
    right.set_xlabel("training step")
    right.set_ylabel("induction score")
    right.set_title("attention from i to key i - period + 1")
    right.legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"2-layer GPT on repeated random sequences (period {result.config['period']}): "
        "a previous-token head (layer 0) and an induction head (layer 1) form together",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
