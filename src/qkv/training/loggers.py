"""Training logs the usual tools read, beside ``metrics.jsonl``: ``--log tensorboard``
(PyTorch's ``SummaryWriter`` in ``<out-dir>/tensorboard``) or ``--log wandb`` (``wandb.init``
with the run's config; ``WANDB_MODE=offline`` and the other wandb variables are honoured).

Scalars: ``train/loss``, ``train/lr``, ``train/tokens_per_s``, ``train/grad_norm`` (before
clipping) and ``val/loss``, each at its optimizer step. Both libraries are imported here only,
when asked for; only rank 0 logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOGGERS = ("none", "tensorboard", "wandb")


class RunLogger:
    """Scalars of a run to TensorBoard or wandb (a no-op for ``kind="none"`` or disabled)."""

    def __init__(
        self, kind: str, out_dir: Path, *, config: dict[str, Any], enabled: bool = True
    ) -> None:
        if kind not in LOGGERS:
            raise ValueError(f"--log {kind!r} is unknown; choose one of: {', '.join(LOGGERS)}")
        self.kind = kind if enabled else "none"
        self._writer: Any = None
        self._run: Any = None
        if self.kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError(
                    "--log tensorboard needs the tensorboard package; pip install tensorboard"
                ) from None
            self._writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
        elif self.kind == "wandb":
            try:
                import wandb
            except ImportError:
                raise ValueError(
                    "--log wandb needs the wandb package; pip install wandb (or use --log "
                    "tensorboard)"
                ) from None
            self._run = wandb.init(
                project="qkv", name=out_dir.name, dir=str(out_dir), config=config, reinit=True
            )

    def scalars(self, step: int, values: dict[str, float | None]) -> None:
        """Log ``values`` (``None`` entries are left out) at optimizer step ``step``."""
        present = {k: float(v) for k, v in values.items() if v is not None}
        if self._writer is not None:
            for name, value in present.items():
                self._writer.add_scalar(name, value, global_step=step)
        elif self._run is not None and present:
            self._run.log(present, step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._run is not None:
            self._run.finish()
            self._run = None
