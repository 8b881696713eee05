"""Tokenizers of the text families: characters, or byte-level BPE trained locally.

Both map text to integer ids and back, serialize to one JSON document (saved as
`tokenizer.json` in the run directory; reading it never executes code) and know, for every id,
how many UTF-8 bytes and how many characters it stands for, so that a model's loss can be
reported in bits per character or per byte whatever the tokenizer.

- `char`: the vocabulary is the sorted set of characters of the training corpus. Text holding
  any other character is refused with an error that lists the characters.
- `bpe`: byte-level BPE (the GPT-2 scheme) trained with Hugging Face `tokenizers` on the corpus.
  Its base alphabet is the 256 bytes, so any UTF-8 text round-trips exactly, including
  characters never seen in training.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from functools import cache

import numpy as np

from genlab.errors import DataError, GenlabError, UsageError

FILE = "tokenizer.json"
"""Name of the tokenizer's file in a run directory."""


@cache
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters (ByteLevel)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _unicode_to_byte() -> dict[str, int]:
    return {c: b for b, c in _byte_to_unicode().items()}


def _char_count(data: bytes) -> int:
    """Characters in UTF-8 bytes: every byte that does not continue a multi-byte sequence."""
    return sum(1 for b in data if b & 0xC0 != 0x80)


class Tokenizer:
    """Text <-> ids; `token_bytes[i]` / `token_chars[i]`: UTF-8 bytes / characters of id i."""

    kind: str
    vocab_size: int
    token_bytes: np.ndarray
    token_chars: np.ndarray

    def encode(self, text: str, *, what: str = "the text", error: type = UsageError) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.id_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def id_bytes(self, i: int) -> bytes:
        raise NotImplementedError

    def to_json(self) -> str:
        raise NotImplementedError

    def streamer(self) -> TextStreamer:
        """Decodes ids one at a time into text, holding back incomplete UTF-8 characters."""
        return TextStreamer(self)


class TextStreamer:
    """Incremental decoding: feed ids, get the text they complete."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, ids: Iterable[int]) -> str:
        return self.decoder.decode(b"".join(self.tokenizer.id_bytes(int(i)) for i in ids))

    def flush(self) -> str:
        return self.decoder.decode(b"", final=True)


class CharTokenizer(Tokenizer):
    """One id per character of a fixed vocabulary (sorted by code point)."""

    kind = "char"

    def __init__(self, chars: str) -> None:
        if not chars:
            raise DataError("a char tokenizer needs at least one character")
        self.chars = "".join(sorted(set(chars)))
        self.vocab_size = len(self.chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        self._bytes = [c.encode("utf-8") for c in self.chars]
        self.token_bytes = np.array([len(b) for b in self._bytes], dtype=np.int64)
        self.token_chars = np.ones(self.vocab_size, dtype=np.int64)
        self.codepoints = np.array([ord(c) for c in self.chars], dtype=np.int64)

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` outside the vocabulary, sorted."""
        return sorted(set(text) - self.index.keys())

    def encode(self, text: str, *, what: str = "the text", error: type = UsageError) -> list[int]:
        return self.encode_array(text, what=what, error=error).tolist()

    def encode_array(
        self, text: str, *, what: str = "the text", error: type = UsageError
    ) -> np.ndarray:
        """Ids of `text` as an int64 array (vectorized: fast on large chunks)."""
        if not text:
            return np.zeros(0, dtype=np.int64)
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = np.searchsorted(self.codepoints, points).clip(0, self.vocab_size - 1)
        if not np.array_equal(self.codepoints[ids], points):
            shown = ", ".join(repr(c) for c in self.unknown(text)[:20])
            raise error(
                f"{what} holds characters the run's char tokenizer has never seen: {shown}; "
                "remove them, or train with --set data.tokenizer=bpe (any UTF-8 text)"
            )
        return ids

    def id_bytes(self, i: int) -> bytes:
        return self._bytes[i]

    def to_json(self) -> str:
        return json.dumps({"genlab_tokenizer": "char", "chars": self.chars})


class BPETokenizer(Tokenizer):
    """Byte-level BPE from Hugging Face `tokenizers` (no special tokens, no added prefix)."""

    kind = "bpe"

    def __init__(self, hf_json: str) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self.hf = HFTokenizer.from_str(hf_json)
        self.vocab_size = self.hf.get_vocab_size()
        to_byte = _unicode_to_byte()
        vocab = self.hf.get_vocab()
        self._bytes: list[bytes] = [b""] * self.vocab_size
        for piece, i in vocab.items():
            self._bytes[i] = bytes(to_byte[c] for c in piece)
        self.token_bytes = np.array([len(b) for b in self._bytes], dtype=np.int64)
        self.token_chars = np.array([_char_count(b) for b in self._bytes], dtype=np.int64)

    @classmethod
    def train(cls, chunks: Iterator[str], vocab_size: int) -> BPETokenizer:
        """Learn merges on the text chunks until the vocabulary holds `vocab_size` ids."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(chunks, trainer=trainer)
        return cls(hf.to_str())

    def encode(self, text: str, *, what: str = "the text", error: type = UsageError) -> list[int]:
        return self.hf.encode(text).ids if text else []

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts)]

    def id_bytes(self, i: int) -> bytes:
        return self._bytes[i]

    def to_json(self) -> str:
        return self.hf.to_str()


def train_tokenizer(kind: str, chunks: Iterable[str], *, vocab_size: int) -> Tokenizer:
    """A new tokenizer of `kind` ('char' or 'bpe') learned from the text chunks."""
    if kind == "char":
        seen: set[str] = set()
        for chunk in chunks:
            seen.update(chunk)
        return CharTokenizer("".join(seen))
    if kind == "bpe":
        if vocab_size < 256:
            raise UsageError(
                f"data.vocab_size must be at least 256 for bpe (its alphabet is the 256 byte "
                f"values); got {vocab_size}"
            )
        return BPETokenizer.train(iter(chunks), vocab_size)
    raise UsageError(f"unknown data.tokenizer '{kind}'; use char or bpe")


def tokenizer_from_json(text: str | bytes) -> Tokenizer:
    """The tokenizer saved by `to_json` (a run directory's tokenizer.json)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{FILE} is damaged ({e}); it cannot be read") from None
    try:
        if data.get("genlab_tokenizer") == "char":
            return CharTokenizer(data["chars"])
        if isinstance(data.get("model"), dict) and data["model"].get("type") == "BPE":
            return BPETokenizer(text if isinstance(text, str) else text.decode("utf-8"))
    except GenlabError:
        raise
    except Exception as e:  # tokenizers raises its own exception types on bad JSON
        raise DataError(f"{FILE} is damaged ({e}); it cannot be read") from None
    raise DataError(f"{FILE} is not a genlab char tokenizer nor a byte-level BPE tokenizer")
