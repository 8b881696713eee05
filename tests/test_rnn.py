"""RNN language model: carried hidden state in sampling, truncated BPTT, freezing."""

from __future__ import annotations

import pytest
import torch

from genlab.data import DataInfo
from genlab.data.text import TextRecord
from genlab.errors import UsageError
from genlab.models.rnn import RNN, Config
from genlab.text import train_tokenizer

VOCAB = "abcdefghijklmnopqrstuvwxyz .\n"


def make_rnn(**kw) -> RNN:
    cfg = Config(**{"hidden": 32, "embed": 16, "seq_len": 24, "bptt": 8, **kw})
    info = DataInfo(
        source="t", kind="text", shape=[cfg.seq_len], num_classes=0, task="none",
        record=TextRecord(vocab_size=len(VOCAB)),
    )  # fmt: skip
    torch.manual_seed(0)
    model = RNN(cfg, info).eval()
    model.tokenizer = train_tokenizer("char", [VOCAB], vocab_size=0)
    return model


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_carried_state_sampling_equals_rereading_the_sequence(cell):
    """The carried state steps with the cell functions; rereading runs the whole recurrent
    kernel on the sequence: the same logits, the same tokens."""
    model = make_rnn(cell=cell)
    prompt = torch.tensor([[1, 2, 3, 4] * 10])  # longer than seq_len: read whole, no limit
    forced = torch.randint(0, len(VOCAB), (1, 30), generator=torch.Generator().manual_seed(0))
    carried, reread = model.stepper(True), model.stepper(False)
    with torch.no_grad():
        a, b = carried.start(prompt), reread.start(prompt)
        for t in range(30):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
            a, b = carried.advance(forced[:, t]), reread.advance(forced[:, t])
    greedy_c = model.generate_ids(prompt, 20, greedy=True, cached=True)
    greedy_u = model.generate_ids(prompt, 20, greedy=True, cached=False)
    assert torch.equal(greedy_c, greedy_u)
    top1 = model.generate_ids(prompt, 20, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(top1, greedy_u)  # a draw from the top token only is the greedy choice


def test_truncated_bptt_cuts_gradients_but_carries_the_state():
    model = make_rnn(cell="lstm", seq_len=16, bptt=8).train()
    ids = torch.randint(0, len(VOCAB), (2, 16), generator=torch.Generator().manual_seed(0))
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["emb"] = output

    hook = model.emb.register_forward_hook(keep)
    logits = model.logits(ids)
    hook.remove()
    logits[:, 8:].sum().backward()  # the second window's outputs only
    grad = captured["emb"].grad
    assert grad[:, :8].abs().max() == 0  # no gradient back across the window boundary
    assert grad[:, 8:].abs().max() > 0
    changed = ids.clone()
    changed[:, 0] = (ids[:, 0] + 1) % len(VOCAB)
    with torch.no_grad():  # but the state carried into the second window saw the first
        assert not torch.allclose(model.eval().logits(changed)[:, 8:], logits[:, 8:].detach())


def test_rnn_sampling_options_and_zero_new_tokens():
    model = make_rnn(cell="gru")
    assert model.sample(1, prompt="hi", max_new_tokens=0) == ["hi"]
    texts = model.sample(3, prompt="ab", max_new_tokens=12, generator=torch.Generator())
    assert all(t.startswith("ab") and len(t) == 14 for t in texts)
    with pytest.raises(UsageError, match="--top-k must be a positive"):
        model.sample(1, top_k=-3)


def test_freeze_stops_training_the_embedding_and_the_first_layers():
    model = make_rnn(n_layer=3)
    model.freeze(2)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "emb.weight" in frozen
    assert {n for n in frozen if n.startswith("rnn.")} == {
        f"rnn.{kind}_{mat}_l{i}" for kind in ("weight", "bias") for mat in ("ih", "hh")
        for i in (0, 1)
    }  # fmt: skip
    assert model.head.weight.requires_grad


def test_bad_rnn_settings_are_usage_errors():
    with pytest.raises(UsageError, match="model.bptt must be at least 1"):
        Config(bptt=0).validate()
    with pytest.raises(UsageError, match=r"model.dropout must be in \[0, 1\)"):
        Config(dropout=1.0).validate()
