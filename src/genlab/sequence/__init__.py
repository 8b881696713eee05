"""Autoregressive models over token sequences (text, audio, music) and their decoding loop."""

from genlab.sequence.decoding import Recompute, Stepper, filter_logits, generate, next_token
from genlab.sequence.model import KINDS, SequenceModel, vocab_size_of

__all__ = [
    "KINDS",
    "Recompute",
    "SequenceModel",
    "Stepper",
    "filter_logits",
    "generate",
    "next_token",
    "vocab_size_of",
]
