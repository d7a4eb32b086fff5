"""How a run stops early: a fault it can name, or the user's Ctrl-C (checkpoints intact)."""


class TrainingError(ValueError):
    """A run stopped by a fault it could name (non-finite loss, ...); checkpoints are intact."""


class TrainingInterrupted(Exception):
    """Ctrl-C: the run saved a checkpoint at a step boundary and stopped."""
