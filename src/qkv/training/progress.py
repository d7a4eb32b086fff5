"""A tqdm progress bar on stderr with loss, tokens/s and the time left (tqdm's ETA)."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Progress over optimizer steps ``[start, total)``; a no-op when disabled."""

    def __init__(self, *, start: int, total: int, enabled: bool, verbose: bool = True) -> None:
        self._bar: Any = None
        self.verbose = verbose
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=start, file=sys.stderr, unit="step", dynamic_ncols=True,
                smoothing=0.1,
            )  # fmt: skip

    def update(self, *, loss: float, tokens_per_s: float, val_loss: float | None) -> None:
        if self._bar is None:
            return
        postfix = {"loss": f"{loss:.4f}", "tok/s": f"{tokens_per_s:,.0f}"}
        if val_loss is not None:
            postfix["val"] = f"{val_loss:.4f}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        elif self.verbose:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
