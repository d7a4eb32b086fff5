"""Training language models: ``train(TrainConfig(...), out_dir)`` with warmup + cosine AdamW,
gradient accumulation, bf16 autocast, atomic checkpoints that resume bit-identically, and
data parallelism under torchrun. The ``qkv train`` command is a thin layer over this."""

from qkv.training.checkpoint import load_for_inference, resolve_checkpoint
from qkv.training.config import TrainConfig
from qkv.training.errors import TrainingError, TrainingInterrupted
from qkv.training.schedule import learning_rate
from qkv.training.trainer import TrainResult, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "TrainingInterrupted",
    "learning_rate",
    "load_for_inference",
    "resolve_checkpoint",
    "train",
]
