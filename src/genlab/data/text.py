"""The text kind: a UTF-8 file or a folder of .txt files -> token windows for language models.

Settings (`data.text.*`): the tokenizer (char or bpe) and, for bpe, its vocabulary size.
Codec: text <-> token ids of the data's tokenizer (`tokenizer.json`, kept in the run
directory). Writer: samples as a .txt file, one after the other, separated by a line of 40
dashes (as `genlab sample` prints them).

The corpus is read in chunks (never whole), checked (UTF-8, no NUL bytes, not empty), hashed,
and tokenized once into a flat token array stored under `$GENLAB_CACHE/text/` (default
`~/.cache/genlab/text/`), keyed by the corpus's SHA-256 and the tokenizer; later runs
memory-map it, so a corpus larger than RAM trains.

Splits are contiguous: the first 1 - val_fraction - test_fraction of the tokens train, the next
val_fraction validate, the tail test_fraction tests. An example is a window of context + 1
tokens (the model reads context tokens and predicts each next one). Training examples start at
every token position (batches are random windows); validation and test examples are the
non-overlapping windows that tile their split, so each token is scored once.

The tokenizer is trained on the whole corpus (characters, or byte-level BPE) unless a run
directory that already holds one (`tokenizer.json`) is given: resuming, evaluating and
fine-tuning reuse the run's tokenizer.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import numbers
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from genlab.data.core import DataInfo, Dataset
from genlab.data.kind import DataKind, SplitSettings
from genlab.errors import DataError, UsageError
from genlab.io.atomic import write_text_atomic
from genlab.text.tokenizer import FILE, CharTokenizer, Tokenizer, tokenizer_from_json
from genlab.text.tokenizer import train_tokenizer as _train_tokenizer

TEXT_SUFFIXES = (".txt", ".text", ".md")
CHUNK = 1 << 20  # bytes read at a time
DEFAULT_CONTEXT = 256
SEPARATOR = "\n" + "-" * 40 + "\n"
"""Between two samples in a .txt file of samples (and on the terminal)."""


@dataclass
class TextConfig:
    """The text kind's settings (`data.text.*`)."""

    tokenizer: Literal["char", "bpe"] = "char"
    """Characters as tokens, or byte-level BPE trained on the corpus."""
    vocab_size: int = 1024
    """With the bpe tokenizer: number of token ids to learn (at least 256)."""


@dataclass
class TextRecord:
    """The text kind's part of DataInfo."""

    vocab_size: int = 0
    """Number of token ids."""
    tokenizer: str = "char"
    """The tokenizer's kind (char or bpe)."""


def cache_root() -> Path:
    """Where tokenized corpora are kept: $GENLAB_CACHE/text or ~/.cache/genlab/text."""
    return Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab")) / "text"


def is_text(path: Path) -> bool:
    """A text file, or a folder holding .txt files (directly or in sub-folders)."""
    if path.is_dir():
        return any(p.is_file() for p in path.rglob("*.txt"))
    return path.suffix.lower() in TEXT_SUFFIXES


def corpus_files(path: Path) -> list[Path]:
    """The files of a corpus in reading order (a folder: its .txt files sorted by path)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.txt") if p.is_file())
    return [path]


def _chunks(files: list[Path], source: str) -> Iterator[str]:
    """The corpus as text chunks of about CHUNK bytes ending at line ends where possible."""
    for f in files:
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset, carry = 0, ""
        with open(f, "rb") as fh:
            while True:
                raw = fh.read(CHUNK)
                if b"\0" in raw:
                    at = offset + raw.index(b"\0")
                    raise DataError(
                        f"'{f}' looks binary (a NUL byte at offset {at}), not UTF-8 text; "
                        "give a plain text file"
                    )
                try:
                    text = carry + decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    raise DataError(
                        f"'{f}' is not UTF-8 text (undecodable byte near offset "
                        f"{offset + e.start}); convert it to UTF-8 or give another file"
                    ) from None
                offset += len(raw)
                if not raw:
                    if text:
                        yield text
                    break
                cut = text.rfind("\n") + 1
                if cut == 0:  # no line end in this chunk: cut anywhere
                    cut = len(text)
                carry = text[cut:]
                if text[:cut]:
                    yield text[:cut]


def _scan(files: list[Path], source: str) -> tuple[str, int]:
    """SHA-256 over the corpus bytes (and file names), and its size; checks every chunk."""
    digest = hashlib.sha256()
    size = 0
    for f in files:
        digest.update(f.name.encode() + b"\0")
    for chunk in _chunks(files, source):
        data = chunk.encode("utf-8")
        digest.update(data)
        size += len(data)
    if size == 0:
        raise DataError(f"'{source}' is empty: there is no text to learn from")
    return digest.hexdigest(), size


def _encode(tok: Tokenizer, chunk: str, source: str) -> np.ndarray:
    if isinstance(tok, CharTokenizer):
        return tok.encode_array(chunk, what=f"'{source}'", error=DataError)
    return np.asarray(tok.encode(chunk), dtype=np.int64)


def _tokenize(files: list[Path], source: str, tok: Tokenizer, key: str) -> tuple[np.ndarray, str]:
    """The corpus's tokens as a read-only memmap, from the cache or written into it now."""
    dtype = np.uint16 if tok.vocab_size <= 1 << 16 else np.int32
    entry = cache_root() / key
    meta_path, tokens_path = entry / "meta.json", entry / "tokens.bin"
    if meta_path.exists() and tokens_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            n = int(meta["tokens"])
            if tokens_path.stat().st_size == n * np.dtype(dtype).itemsize:
                return np.memmap(tokens_path, dtype=dtype, mode="r", shape=(n,)), meta["sha256"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # a damaged entry: tokenize again
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{key}."))
    digest, n = hashlib.sha256(), 0
    try:
        with open(tmp / "tokens.bin", "wb") as out:
            for chunk in _chunks(files, source):
                ids = _encode(tok, chunk, source).astype(dtype)
                out.write(ids.tobytes())
                digest.update(ids.tobytes())
                n += len(ids)
        (tmp / "meta.json").write_text(json.dumps({"tokens": n, "sha256": digest.hexdigest()}))
        if entry.exists():  # a damaged entry, or another process finished first
            os.replace(tmp / "tokens.bin", tokens_path)
            os.replace(tmp / "meta.json", meta_path)
            tmp.rmdir()
        else:
            os.replace(tmp, entry)
    except BaseException:
        for p in tmp.glob("*"):
            p.unlink()
        tmp.rmdir()
        raise
    return np.memmap(tokens_path, dtype=dtype, mode="r", shape=(n,)), digest.hexdigest()


@dataclass
class TextSplit:
    """Windows of `context + 1` tokens of a token array, starting every `stride` tokens."""

    tokens: np.ndarray
    context: int
    stride: int

    def __len__(self) -> int:
        if len(self.tokens) < self.context + 1:
            return 0
        return (len(self.tokens) - self.context - 1) // self.stride + 1


class TextDataset(Dataset):
    """A tokenized corpus. Batches are `{"x": (B, context + 1) int64 token ids}`."""

    def batch(self, split: str, index: torch.Tensor) -> dict[str, torch.Tensor]:
        if split not in self.splits:
            raise UsageError(f"unknown split '{split}'; use one of: {', '.join(self.splits)}")
        part: TextSplit = self.splits[split]  # type: ignore[assignment]
        starts = torch.as_tensor(index, dtype=torch.long).cpu().numpy() * part.stride
        offsets = np.arange(part.context + 1)
        x = np.asarray(part.tokens[starts[:, None] + offsets], dtype=np.int64)  # (B, T + 1)
        return {"x": torch.from_numpy(x)}


def load_text(
    path: Path,
    source: str,
    split: SplitSettings,
    cfg: TextConfig,
    *,
    context: int = 0,
    run_dir: str | os.PathLike[str] | None = None,
) -> TextDataset:
    """Read, tokenize (once; cached) and split a text corpus (see the module docstring).

    `context`: tokens a model reads per example (0: DEFAULT_CONTEXT). `run_dir`: a run whose
    saved tokenizer to use instead of training a new one.
    """
    val_fraction, test_fraction = split.val_fraction, split.test_fraction
    context = context or DEFAULT_CONTEXT
    files = corpus_files(path)
    if not files:
        raise DataError(f"found no .txt files in the folder '{source}'")
    corpus_hash, _ = _scan(files, source)
    saved = Path(run_dir) / FILE if run_dir is not None else None
    if saved is not None and saved.exists():
        tok = tokenizer_from_json(saved.read_bytes())
    else:
        tok = _train_tokenizer(cfg.tokenizer, _chunks(files, source), vocab_size=cfg.vocab_size)
    tok_json = tok.to_json()
    key = hashlib.sha256(f"{corpus_hash}:{tok_json}".encode()).hexdigest()[:24]
    tokens, tokens_hash = _tokenize(files, source, tok, key)

    n = len(tokens)
    if n < context + 1:
        raise DataError(
            f"'{source}' holds {n} tokens, fewer than one context window of {context + 1} "
            f"(model context {context} + 1); use a longer text or a smaller model context"
        )
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * n)
    n_train = n - n_val - n_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
    bounds["test"] = (n_train + n_val, n)
    for name, fraction in (("train", 1.0), ("val", val_fraction), ("test", test_fraction)):
        lo, hi = bounds[name]
        if fraction > 0 and hi - lo < context + 1:
            raise DataError(
                f"the {name} split of '{source}' holds {hi - lo} tokens, fewer than one window "
                f"of {context + 1}; use a longer text, a smaller model context, or change "
                "data.val_fraction / data.test_fraction"
            )
    splits = {
        name: TextSplit(tokens[lo:hi], context, 1 if name == "train" else context)
        for name, (lo, hi) in bounds.items()
    }
    fp = hashlib.sha256(f"{tokens_hash}:{n_train}:{n_val}:{n_test}".encode()).hexdigest()
    info = DataInfo(
        source=source,
        kind="text",
        shape=[context],
        num_classes=0,
        task="none",
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fp,
        files=[FILE],
        record=TextRecord(vocab_size=tok.vocab_size, tokenizer=tok.kind),
    )
    return TextDataset(info=info, splits=splits, files={FILE: tok_json.encode("utf-8")})  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def _tokenizer(raw: bytes) -> Tokenizer:
    return tokenizer_from_json(raw)


class TextKind(DataKind):
    name = "text"
    description = "a UTF-8 text file (.txt, .text, .md) or a folder of .txt files"
    Config = TextConfig
    Record = TextRecord
    suffixes = (".txt",)
    streams = True
    tokens = True

    def claims(self, path: Path) -> bool:
        return is_text(path)

    def read(
        self,
        path: Path,
        source: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> TextDataset:
        return load_text(path, source, split, cfg, context=context, run_dir=run_dir)

    def tokenizer(self, info: DataInfo) -> Tokenizer:
        """The data's tokenizer (from `info.file_data`, filled when data or a run is loaded)."""
        raw = info.file_data.get(FILE)
        if raw is None:
            raise UsageError(
                f"the text of '{info.source}' has no tokenizer loaded; load the data "
                "(load_dataset) or the run (genlab.load) it belongs to first"
            )
        return _tokenizer(bytes(raw))

    def encode(self, data: Any, info: DataInfo) -> Any:
        """A string -> its token ids (T,) int64; a list of strings -> a list of such tensors."""
        tok = self.tokenizer(info)
        if isinstance(data, str):
            return torch.tensor(tok.encode(data), dtype=torch.int64)
        return [self.encode(text, info) for text in data]

    def decode(self, x: Any, info: DataInfo) -> Any:
        """Token ids (T,) -> a string; (N, T) or a list of id sequences -> a list of strings."""
        tok = self.tokenizer(info)
        if isinstance(x, (torch.Tensor, np.ndarray)):
            x = torch.as_tensor(x).tolist()  # (T,) -> ids, (N, T) -> N lists of ids
        seqs = list(x)
        if all(isinstance(i, numbers.Integral) for i in seqs):
            return tok.decode(int(i) for i in seqs)
        return [self.decode(ids, info) for ids in seqs]

    def write(self, samples: Any, path: Path, info: DataInfo, **options: Any) -> list[Path]:
        """Texts (a string, a list of strings, or token ids) -> a UTF-8 .txt file, the samples
        separated by a line of 40 dashes."""
        path = Path(path)
        self.check_suffix(path)
        if options:
            raise UsageError(f"the text writer takes no options; got {', '.join(options)}")
        texts = samples
        if isinstance(samples, torch.Tensor) or (
            isinstance(samples, list) and samples and not isinstance(samples[0], str)
        ):
            texts = self.decode(samples, info)
        if isinstance(texts, str):
            texts = [texts]
        write_text_atomic(path, SEPARATOR.join(texts) + "\n")
        return [path]


KIND = TextKind()
