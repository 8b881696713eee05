"""Language models from the command line: train, stream samples, eval units, fine-tune, errors."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import TINY, run_cli, tiny_corpus
from genlab.cli import main

FAST = [
    "train.batch_size=16",
    "train.eval_every=20",
    "train.eval_batches=0",
    "train.log_every=10",
    "train.lr=3e-3",
]


def sets(*items: str) -> list[str]:
    return [w for item in items for w in ("--set", item)]


def genlab(capsys, *args: str) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Tokenized corpora go to a temporary $GENLAB_CACHE, not to ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "romeo.txt"
    path.write_text(tiny_corpus(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory, corpus) -> Path:
    """A tiny character-level GPT trained 40 steps (shared by the tests of this file)."""
    run = tmp_path_factory.mktemp("runs") / "gpt"
    args = ["train", "gpt", "--data", corpus, "--out", run, "--steps", 40, "--quiet"]
    assert main([str(a) for a in [*args, *sets(*TINY["gpt"], *FAST)]]) == 0
    return run


def test_sample_streams_text_and_writes_it(gpt_run, tmp_path, capsys):
    out = tmp_path / "romeo-sample.txt"
    args = ["sample", gpt_run, "--prompt", "ROMEO:", "--max-new-tokens", 60, "--seed", 1]
    args += ["--temperature", 0.8, "--top-k", 10, "--top-p", 0.95]
    status, text, err = genlab(capsys, *args, "--out", out)
    assert status == 0, err
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 60 + 1  # + final newline
    assert out.read_text() == text
    assert genlab(capsys, *args)[1] == text  # the seed fixes the draw
    assert genlab(capsys, "sample", gpt_run, "--prompt", "ROMEO:", "--max-new-tokens", 0)[1] == (
        "ROMEO:\n"
    )
    status, text, _ = genlab(capsys, "sample", gpt_run, "-n", 2, "--max-new-tokens", 10)
    assert status == 0 and text.count("-" * 40) == 1


def test_eval_reports_loss_perplexity_and_bits_per_character(gpt_run, capsys):
    status, _, err = genlab(capsys, "eval", gpt_run, "--split", "val")
    assert status == 0, err
    m = json.loads((gpt_run / "eval-val.json").read_text())
    rows = [json.loads(x) for x in (gpt_run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"][-1]["loss"]
    assert m["loss_nats_per_token"] == pytest.approx(val, abs=1e-5)  # the trainer's figure
    assert m["perplexity"] == pytest.approx(math.exp(val), rel=1e-5)
    assert m["bits_per_char"] == pytest.approx(val / math.log(2), rel=1e-5)
    assert m["bits_per_byte"] == pytest.approx(m["bits_per_char"])  # ASCII text
    assert m["loss_nats_per_token"] < math.log(len(set(tiny_corpus()))) - 0.5  # it learned


def test_fine_tuning_keeps_the_tokenizer_freezes_layers_and_lowers_the_loss(
    gpt_run, tmp_path, capsys
):
    other = tmp_path / "nurse.txt"
    other.write_text(tiny_corpus(lines=300, seed=1).replace("ROMEO", "NURSE"), encoding="utf-8")
    status, _, err = genlab(capsys, "eval", gpt_run, "--data", other, "--split", "val")
    assert status == 0, err
    before = json.loads((gpt_run / "eval-val.json").read_text())["loss_nats_per_token"]
    tuned = tmp_path / "tuned"
    args = ["train", "gpt", "--init-from", gpt_run, "--data", other, "--out", tuned]
    status, _, err = genlab(
        capsys, *args, "--steps", 30, "--quiet", *sets(*FAST, "train.freeze_layers=1")
    )
    assert status == 0, err
    assert (tuned / "tokenizer.json").read_bytes() == (gpt_run / "tokenizer.json").read_bytes()
    assert json.loads((tuned / "run.json").read_text())["init_from"] == str(gpt_run.resolve())
    status, _, err = genlab(capsys, "eval", tuned, "--split", "val")
    after = json.loads((tuned / "eval-val.json").read_text())["loss_nats_per_token"]
    assert after < before
    src = load_file(str(gpt_run / "checkpoints" / "best" / "model.safetensors"))
    new = load_file(str(tuned / "checkpoints" / "latest" / "model.safetensors"))
    for name in src:
        frozen = name.startswith(("tok_emb", "pos_emb", "blocks.0."))
        assert src[name].equal(new[name]) == frozen, name


def test_rnn_with_bpe_round_trips_unseen_characters_and_reports_bits_per_byte(
    corpus, tmp_path, capsys
):
    run = tmp_path / "rnn"
    args = ["train", "rnn", "--data", corpus, "--out", run, "--steps", 20, "--quiet"]
    extra = sets(*TINY["rnn"], *FAST, "model.cell=gru", "data.tokenizer=bpe", "data.vocab_size=300")
    status, _, err = genlab(capsys, *args, *extra)
    assert status == 0, err
    prompt = "Grüße 🙂 ROMEO:"
    status, text, err = genlab(capsys, "sample", run, "--prompt", prompt, "--max-new-tokens", 8)
    assert status == 0, err
    assert text.startswith(prompt)
    status, _, err = genlab(capsys, "eval", run)
    m = json.loads((run / "eval-test.json").read_text())
    assert m["bits_per_token"] > m["bits_per_char"] == pytest.approx(m["bits_per_byte"])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", "looks binary"),
        (b"ROMEO: hi.\n", "fewer than one context window"),
    ],
)
def test_bad_corpora_are_one_line_data_errors(tmp_path, capsys, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    status, _, err = genlab(capsys, "train", "gpt", "--data", path, "--out", tmp_path / "r")
    assert status == 1
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--prompt", "Romeo & Xavier"], "never seen: '&', 'X';"),
        (["--temperature", "0"], "--temperature must be positive"),
        (["--top-k", "0"], "--top-k must be a positive"),
        (["--top-p", "2"], r"--top-p must be in (0, 1]"),
    ],
)
def test_bad_sampling_requests_are_usage_errors_that_touch_nothing(
    gpt_run, tmp_path, capsys, option, message
):
    before = snapshot(gpt_run)
    out = tmp_path / "never.txt"
    status, text, err = genlab(capsys, "sample", gpt_run, *option, "--out", out)
    assert status == 2 and text == ""
    assert err.count("\n") == 1 and message in err
    assert not out.exists() and snapshot(gpt_run) == before


def test_the_console_script_streams_and_fails_with_one_line(gpt_run):
    r = run_cli("sample", str(gpt_run), "--prompt", "JULIET:", "--max-new-tokens", "20")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("JULIET:") and len(r.stdout) == len("JULIET:") + 21
    r = run_cli("sample", str(gpt_run), "--prompt", "¿Quién?")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "never seen: '?', 'Q', '¿', 'é';" in r.stderr
