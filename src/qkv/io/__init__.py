"""Checkpoint and ecosystem I/O: ``qkv.load`` / ``qkv.save`` (qkv and Hugging Face formats),
``qkv.load_tokenizer``, pretrained models shipped as pip packages and a fast sentence
encoder."""

from qkv.io.api import load, save
from qkv.io.encoder import SentenceEncoder, encode
from qkv.io.pretrained import KNOWN, pretrained, pretrained_path
from qkv.io.tokenizer import Tokenizer, load_tokenizer

__all__ = [
    "KNOWN",
    "SentenceEncoder",
    "Tokenizer",
    "encode",
    "load",
    "load_tokenizer",
    "pretrained",
    "pretrained_path",
    "save",
]
