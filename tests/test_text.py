"""Tokenizers and the text corpus reader: exact round trips, windows, splits, cache, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_corpus
from genlab.data import DataConfig, load_dataset
from genlab.errors import DataError, UsageError
from genlab.text import CharTokenizer, tokenizer_from_json, train_tokenizer

ODD_TEXT = "Grüße, 世界! 🙂\ttabs\r\nand  double  spaces\n\n\x0bend"


def settings(**common) -> DataConfig:
    return DataConfig(**common)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(tiny_corpus(), encoding="utf-8")
    return path


def test_char_tokenizer_round_trips_and_lists_unknown_characters():
    tok = train_tokenizer("char", ["hello world\n"], vocab_size=0)
    assert tok.vocab_size == len(set("hello world\n"))
    assert tok.decode(tok.encode("hello\nworld")) == "hello\nworld"
    with pytest.raises(UsageError, match=r"never seen: 'X', 'é'"):
        tok.encode("hello Xé", what="the prompt")
    again = tokenizer_from_json(tok.to_json())
    assert isinstance(again, CharTokenizer) and again.chars == tok.chars


def test_bpe_round_trips_any_utf8_text_exactly_with_byte_and_char_counts():
    tok = train_tokenizer("bpe", [tiny_corpus()], vocab_size=300)
    assert tok.vocab_size == 300
    ids = tok.encode(ODD_TEXT)  # characters never seen in training
    assert tok.decode(ids) == ODD_TEXT
    assert tok.token_bytes[ids].sum() == len(ODD_TEXT.encode("utf-8"))
    assert tok.token_chars[ids].sum() == len(ODD_TEXT)
    common = tok.encode("ROMEO: Juliet loves the moon.")
    assert len(common) < len("ROMEO: Juliet loves the moon.")  # merges were learned
    again = tokenizer_from_json(tok.to_json())
    assert again.encode(ODD_TEXT) == ids
    streamer = again.streamer()  # one id at a time, multi-byte characters held back
    assert "".join(streamer.feed([i]) for i in ids) + streamer.flush() == ODD_TEXT


def test_bpe_vocabulary_below_the_byte_alphabet_is_refused():
    with pytest.raises(UsageError, match="at least 256"):
        train_tokenizer("bpe", ["text"], vocab_size=100)


def test_text_file_splits_into_contiguous_windows(corpus):
    data = load_dataset(corpus, settings(val_fraction=0.1, test_fraction=0.1), context=16)
    tok = tokenizer_from_json(data.files["tokenizer.json"])
    tokens = np.array(tok.encode(corpus.read_text()))
    n = len(tokens)
    assert data.info.kind == "text" and data.info.shape == [16]
    assert data.info.record.vocab_size == tok.vocab_size and data.info.record.tokenizer == "char"
    n_val = n_test = round(0.1 * n)
    n_train = n - n_val - n_test
    assert len(data.splits["train"]) == n_train - 16  # a window at every position
    assert len(data.splits["val"]) == (n_val - 17) // 16 + 1  # non-overlapping windows
    batch = data.batch("train", torch.tensor([0, 5, n_train - 17]))["x"]
    assert batch.dtype == torch.long and batch.shape == (3, 17)
    assert torch.equal(batch[1], torch.from_numpy(tokens[5:22]))
    assert torch.equal(batch[2], torch.from_numpy(tokens[n_train - 17 : n_train]))
    val = data.batch("val", torch.tensor([1]))["x"][0]
    assert torch.equal(val, torch.from_numpy(tokens[n_train + 16 : n_train + 33]))
    assert isinstance(data.splits["train"].tokens, np.memmap)  # never all in memory


def test_tokens_are_cached_by_content_and_reused(corpus, cache):
    first = load_dataset(corpus, context=16)
    entries = list((cache / "text").iterdir())
    assert len(entries) == 1
    stamp = (entries[0] / "tokens.bin").stat().st_mtime_ns
    second = load_dataset(corpus, context=16)
    assert (entries[0] / "tokens.bin").stat().st_mtime_ns == stamp
    assert second.info.fingerprint == first.info.fingerprint
    corpus.write_text(corpus.read_text() + "NURSE: more.\n", encoding="utf-8")
    third = load_dataset(corpus, context=16)
    assert third.info.fingerprint != first.info.fingerprint
    assert len(list((cache / "text").iterdir())) == 2


def test_a_folder_of_txt_files_reads_in_sorted_order(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("bbbb\n" * 20)
    (folder / "a.txt").write_text("aaaa\n" * 20)
    (folder / "sub" / "c.txt").write_text("cccc\n" * 20)
    (folder / "notes.csv").write_text("x,y\n1,2\n")  # ignored
    data = load_dataset(folder, settings(val_fraction=0.1, test_fraction=0.0), context=8)
    tok = tokenizer_from_json(data.files["tokenizer.json"])
    first = tok.decode(data.batch("train", torch.tensor([0]))["x"][0].tolist())
    assert first == "aaaa\naaaa"
    assert tok.vocab_size == 4  # a, b, c, newline


def test_a_saved_tokenizer_is_reused_and_new_characters_are_a_data_error(corpus, tmp_path):
    data = load_dataset(corpus, context=16)
    run = tmp_path / "run"
    run.mkdir()
    (run / "tokenizer.json").write_bytes(data.files["tokenizer.json"])
    other = tmp_path / "other.txt"
    other.write_text("JULIET: the rose.\n" * 40)
    again = load_dataset(other, context=16, run_dir=run)
    assert again.files == data.files
    other.write_text("JULIET: the rose ♥ Zebra.\n" * 40)
    with pytest.raises(DataError, match=r"never seen: 'Z', 'b', '♥'"):
        load_dataset(other, context=16, run_dir=run)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"some text\x00\x01\x02 binary", "looks binary"),
        (b"caf\xe9 latin-1 text\n", "not UTF-8"),
        (b"short text\n", "fewer than one context window"),
    ],
)
def test_bad_text_files_are_one_line_data_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        load_dataset(path, context=64)
    assert "\n" not in str(err.value)
