"""Experiments: training runs that measure something about attention, end to end.

The top layer of the library (attention → nn → models → io / generation / data → training →
viz → experiments → cli): an experiment may use every layer below it, and none of them uses
an experiment.

- :mod:`qkv.experiments.induction`: a 2-layer GPT on repeated random sequences grows an
  induction head (``qkv demo induction``).
"""
