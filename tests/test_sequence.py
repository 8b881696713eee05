"""The sequence-model base on token data that is not text (no tokenizer), and sampling that
changes no process-global state."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from genlab.data.core import DataInfo, Dataset, Split
from genlab.data.image import ImageRecord
from genlab.data.sequence import SequenceRecord
from genlab.errors import DataError, UsageError
from genlab.models.gpt import GPT
from genlab.models.gpt import Config as GPTConfig
from genlab.models.rnn import RNN
from genlab.models.rnn import Config as RNNConfig
from genlab.sequence import SequenceModel

VOCAB, CONTEXT = 5, 8


def cycle_data(n: int = 64) -> Dataset:
    """Windows of CONTEXT + 1 tokens of the cycle 0 1 2 3 4 0 1 ..., at random phases, kind
    "sequence" (stored as float32 like every genlab.data.core data set)."""
    start = torch.randint(0, VOCAB, (n, 1), generator=torch.Generator().manual_seed(0))
    x = ((start + torch.arange(CONTEXT + 1)) % VOCAB).float()  # (n, CONTEXT + 1)
    info = DataInfo(
        source="cycle", kind="sequence", shape=[CONTEXT], num_classes=0, task="none",
        n_train=n, n_val=8, n_test=8, record=SequenceRecord(vocab_size=VOCAB),
    )  # fmt: skip
    splits = {"train": Split(x), "val": Split(x[:8]), "test": Split(x[8:16])}
    return Dataset(info=info, splits=splits)


@dataclass
class BigramConfig:
    context: int = CONTEXT


class Bigram(SequenceModel):
    """The smallest sequence model: the next token's logits depend on the last token only."""

    family = "bigram"
    Config = BigramConfig

    def __init__(self, cfg: BigramConfig, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.table = nn.Embedding(self.vocab_size, self.vocab_size)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids)  # (B, T, V)

    def cached_stepper(self):
        model = self

        class LastToken:
            def start(self, ids: torch.Tensor) -> torch.Tensor:
                return model.table(ids[:, -1])

            def advance(self, token: torch.Tensor) -> torch.Tensor:
                return model.table(token)

        return LastToken()


def fit(model: SequenceModel, data: Dataset, steps: int, lr: float) -> list[float]:
    """A plain training loop over `model.loss`; the loss of every step."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(data.splits["train"]), (16,))
        loss = model.loss(data.batch("train", idx))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def cycle_from(token: int, n: int) -> list[int]:
    return [(token + 1 + i) % VOCAB for i in range(n)]


def test_a_sequence_model_trains_and_samples_ids_without_a_tokenizer():
    data = cycle_data()
    torch.manual_seed(0)
    model = Bigram(BigramConfig(), data.info)
    losses = fit(model, data, 150, lr=0.1)
    assert losses[0] > 1.3 and losses[-1] < 0.05  # from ~log 5 to a learned cycle
    model.eval()
    batch = data.batch("val", torch.arange(8))
    with torch.no_grad():
        nll = model.nll(batch)  # (B,) nats over the CONTEXT predicted tokens
    assert nll.shape == (8,) and float(nll.max()) < 0.05 * CONTEXT
    assert model.units(batch)["token"].tolist() == [CONTEXT] * 8
    g = torch.Generator().manual_seed(0)
    ids = model.sample(3, generator=g, max_new_tokens=7, top_k=1)  # from token 0, not returned
    assert ids.dtype == torch.long and ids.tolist() == [cycle_from(0, 7)] * 3
    ids = model.sample(2, generator=g, prompt=[3, 4], max_new_tokens=6, temperature=0.5)
    assert ids.tolist() == [[3, 4, *cycle_from(4, 6)]] * 2  # a learned cycle is near-certain
    assert model.sample(1, prompt=torch.tensor([2]), max_new_tokens=0).tolist() == [[2]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt": [1, 5]}, r"token ids outside 0..4: 5"),
        ({"prompt": "abc"}, "not text: give the prompt as token ids"),
        ({"top_p": 2.0}, r"--top-p must be in \(0, 1\]"),
    ],
)
def test_bad_id_sampling_requests_are_usage_errors(options, message):
    model = Bigram(BigramConfig(), cycle_data().info)
    with pytest.raises(UsageError, match=message):
        model.sample(1, **options)


def test_a_sequence_model_refuses_data_that_is_not_token_sequences():
    info = DataInfo(
        source="digits", kind="image", shape=[1, 8, 8], record=ImageRecord(levels=17),
        num_classes=10, task="classification",
    )  # fmt: skip
    with pytest.raises(DataError, match="needs token sequences"):
        Bigram(BigramConfig(), info)


@pytest.mark.parametrize("family", ["gpt", "rnn"])
def test_gpt_and_rnn_learn_token_sequences_and_sample_ids(family):
    data = cycle_data()
    torch.manual_seed(0)
    if family == "gpt":
        model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=CONTEXT), data.info)
    else:
        model = RNN(RNNConfig(hidden=16, embed=8, seq_len=CONTEXT, bptt=4), data.info)
    assert model.tokenizer is None
    losses = fit(model, data, 60, lr=0.02)
    assert losses[-1] < 0.3 * losses[0]
    model.eval()
    assert set(model.units(data.batch("val", torch.arange(4)))) == {"token"}
    prompt = torch.tensor([[1, 2, 3]])
    steps = 3 * CONTEXT  # past gpt's context
    cached = model.generate_ids(prompt, steps, top_k=1, generator=torch.Generator())
    recomputed = model.generate_ids(prompt, steps, cached=False, greedy=True)
    assert torch.equal(cached, recomputed)
    ids = model.sample(2, prompt=[2], max_new_tokens=5, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (2, 6) and ids[:, 0].tolist() == [2, 2]
    assert int(ids.max()) < VOCAB
    # no prompt: what `genlab sample` asks for (the text options' default prompt is "")
    ids = model.sample(2, max_new_tokens=5, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (2, 5) and int(ids.max()) < VOCAB
    assert model.sample(2, prompt="", max_new_tokens=5).shape == (2, 5)
    with pytest.raises(UsageError, match="not text: give the prompt as token ids"):
        model.sample(1, prompt="C major", max_new_tokens=5)
    with pytest.raises(UsageError, match="streaming is for text"):
        model.sample(1, stream=print)


@pytest.fixture
def process_settings():
    """Distinctive global settings for the test, restored after it."""
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(2)
    torch.backends.mkldnn.enabled = True
    yield 2, True
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = onednn


@pytest.mark.parametrize("family", ["gpt", "rnn"])
@pytest.mark.parametrize("cached", [True, False])
def test_sampling_changes_no_process_global_state(family, cached, process_settings):
    """Not even for the duration of the call: a server samples from many threads at once."""
    from test_gpt import make_gpt
    from test_rnn import make_rnn

    model = make_gpt() if family == "gpt" else make_rnn()
    seen = []

    def watch(piece: str) -> None:  # called while tokens are generated
        seen.append((torch.get_num_threads(), torch.backends.mkldnn.enabled))

    model.sample(1, prompt="ab", max_new_tokens=10, stream=watch, cached=cached)
    model.generate_ids(torch.tensor([[1, 2]]), 5, cached=cached, on_token=lambda t: watch(""))
    assert len(seen) > 10 and set(seen) == {process_settings}
    assert (torch.get_num_threads(), torch.backends.mkldnn.enabled) == process_settings


def test_gpt_on_music_trains_and_samples_files_through_the_command_line(tmp_path, capsys):
    """`genlab sample` of a gpt trained on note lists writes MIDI and JSON (no text prompt)."""
    import json

    from genlab.cli import main

    rng = torch.Generator().manual_seed(0)

    def pieces(n: int) -> list[list[list[int]]]:
        return [[sorted({60 + int(p) for p in torch.randint(0, 8, (2,), generator=rng)})
                 for _ in range(12)] for _ in range(n)]  # fmt: skip

    data = tmp_path / "chorales.json"
    data.write_text(json.dumps({"train": pieces(8), "valid": pieces(3), "test": pieces(3)}))
    run = tmp_path / "run"
    tiny = ["model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.block_size=16"]
    tiny += ["train.batch_size=4", "train.eval_batches=1"]
    sets = [w for kv in tiny for w in ("--set", kv)]
    assert (
        main(["train", "gpt", "--data", str(data), "--out", str(run), "--steps", "3"] + sets) == 0
    )
    for suffix in ("mid", "json"):
        out = tmp_path / f"x.{suffix}"
        status = main(["sample", str(run), "-n", "2", "--max-new-tokens", "30", "--out", str(out)])
        assert status == 0, capsys.readouterr().err
    assert (tmp_path / "x-000.mid").is_file() and (tmp_path / "x-001.mid").is_file()
    written = json.loads((tmp_path / "x.json").read_text())
    assert len(written) == 2 and all(isinstance(p, list) for p in written)


def test_a_text_family_on_audio_samples_one_clip_by_default(tiny_audio, tmp_path):
    import genlab
    from conftest import TINY

    run = genlab.train(
        "rnn", str(tiny_audio), tmp_path / "r",
        overrides=[*TINY["rnn"], "model.seq_len=256", "train.batch_size=8"], steps=1, quiet=True,
    )  # fmt: skip
    model = genlab.load(run)
    g = torch.Generator().manual_seed(0)
    assert model.sample(2, generator=g).shape == (2, model.info.shape[0])  # not 200 tokens
    assert model.sample(1, generator=g, max_new_tokens=5).shape == (1, 5)
