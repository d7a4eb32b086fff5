"""Models built from ``qkv.nn``: GPT (GPT-2 and Llama-style decoders) and BERT, with configs
and named presets."""

from qkv.models.bert import Bert, BertForMaskedLM
from qkv.models.config import BertConfig, GPTConfig, config_from_dict
from qkv.models.gpt import GPT, language_model_loss
from qkv.models.presets import PRESETS, build, preset

__all__ = [
    "GPT",
    "PRESETS",
    "Bert",
    "BertConfig",
    "BertForMaskedLM",
    "GPTConfig",
    "build",
    "config_from_dict",
    "language_model_loss",
    "preset",
]
