"""Text support of the sequence models: tokenizers, and the text layer (`genlab.text.lm`)."""

from genlab.text.tokenizer import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    tokenizer_from_json,
    train_tokenizer,
)

__all__ = ["BPETokenizer", "CharTokenizer", "Tokenizer", "tokenizer_from_json", "train_tokenizer"]
