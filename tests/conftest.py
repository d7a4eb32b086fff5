"""Test-session setup shared by every test package.

HF_HUB_OFFLINE: nothing may be downloaded. TRITON_INTERPRET must be set before any
``@triton.jit`` function is defined, so it is set here, at session start.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
