"""Checkpoint and ecosystem I/O: ``qkv.load`` / ``qkv.save`` (qkv and Hugging Face formats),
``qkv.load_tokenizer``, Hugging Face hub ids (``resolve_model``), pretrained models shipped as
pip packages and a fast sentence encoder."""

from qkv.io.api import load, save
from qkv.io.encoder import SentenceEncoder, encode
from qkv.io.hub import ModelNotFoundError, resolve_model, resolve_tokenizer
from qkv.io.pretrained import KNOWN, pretrained, pretrained_path
from qkv.io.tokenizer import Tokenizer, load_tokenizer

__all__ = [
    "KNOWN",
    "ModelNotFoundError",
    "SentenceEncoder",
    "Tokenizer",
    "encode",
    "load",
    "load_tokenizer",
    "pretrained",
    "pretrained_path",
    "resolve_model",
    "resolve_tokenizer",
    "save",
]
