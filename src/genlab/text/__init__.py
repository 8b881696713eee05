"""Text support of the language-model families: tokenizers and autoregressive decoding."""

from genlab.text.tokenizer import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    tokenizer_from_json,
    train_tokenizer,
)

__all__ = ["BPETokenizer", "CharTokenizer", "Tokenizer", "tokenizer_from_json", "train_tokenizer"]
