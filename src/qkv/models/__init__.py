"""Models built from ``qkv.nn``: GPT (GPT-2 and Llama-style decoders) and BERT, with configs,
named presets and their losses.

A model's ``forward`` returns one tensor (logits; hidden states for a bare ``Bert``);
``forward_with_attentions`` adds each layer's attention weights; losses are plain functions
of the logits (``language_model_loss``, ``masked_lm_loss``) or, fused with the head, of
the final hidden states (``fused_language_model_loss``)."""

from qkv.models.bert import Bert, BertForMaskedLM
from qkv.models.chunked_loss import fused_language_model_loss
from qkv.models.config import BertConfig, GPTConfig, config_from_dict
from qkv.models.gpt import GPT
from qkv.models.losses import language_model_loss, masked_lm_loss
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
    "fused_language_model_loss",
    "language_model_loss",
    "masked_lm_loss",
    "preset",
]
