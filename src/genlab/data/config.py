"""The settings of data loading (the `data.` group of every run configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class DataConfig:
    val_fraction: float = 0.1
    """Fraction of the training examples held out for validation (early stopping, best model)."""
    test_fraction: float = 0.1
    """Fraction held out for testing when the data has no test set of its own."""
    target: str = ""
    """CSV only: the target column (default: a column named target, label, class or y)."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """CSV only: what the target is; auto guesses from its values."""
    seed: int = 0
    """Seed of the train/validation/test split (kept apart from the training seed)."""
    tokenizer: Literal["char", "bpe"] = "char"
    """Text only: characters as tokens, or byte-level BPE trained on the corpus."""
    vocab_size: int = 1024
    """Text with the bpe tokenizer: number of token ids to learn (at least 256)."""
