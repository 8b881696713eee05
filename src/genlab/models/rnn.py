"""Recurrent language model: embedding -> stacked RNN / GRU / LSTM -> linear (Elman 1990;
Cho et al. 2014; Hochreiter & Schmidhuber 1997; the word-level recipe of Zaremba et al. 2014).

Training uses truncated back-propagation through time: a training example of `seq_len` tokens
is read in consecutive windows of `bptt` tokens, the hidden state carried from one window to
the next but detached, so gradients flow back at most `bptt` steps while the state has seen the
whole example. Dropout sits between the recurrent layers and before the output layer.

Sampling carries the hidden state: each new token costs one recurrent step, and the prompt,
however long, is read once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from genlab.data import DataInfo
from genlab.errors import UsageError
from genlab.text.lm import TextModel

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class Config:
    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    """Recurrent cell: Elman rnn (tanh), gru or lstm."""
    n_layer: int = 2
    """Stacked recurrent layers."""
    hidden: int = 256
    """Hidden state size of each layer."""
    embed: int = 64
    """Token embedding size."""
    dropout: float = 0.0
    """Dropout on the embeddings, between recurrent layers and before the output layer."""
    seq_len: int = 128
    """Tokens per training example (the data reader cuts windows of seq_len + 1)."""
    bptt: int = 64
    """Truncation of back-propagation through time: the example is read in windows of this many
    tokens, the hidden state carried across them but gradients cut between them."""

    context_key: ClassVar[str] = "seq_len"
    """The setting that holds the context, named in messages."""

    @property
    def context(self) -> int:
        """Tokens per training example."""
        return self.seq_len

    def validate(self) -> None:
        for name in ("n_layer", "hidden", "embed", "seq_len", "bptt"):
            if getattr(self, name) < 1:
                raise UsageError(f"model.{name} must be at least 1; got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"model.dropout must be in [0, 1); got {self.dropout}")


State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _detach(h: State) -> State:
    return tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()


class RNN(TextModel):
    family = "rnn"
    description = "recurrent language model (rnn, gru or lstm cells), truncated BPTT"
    Config = Config
    tiny = ("model.hidden=32", "model.embed=16", "model.seq_len=16", "model.bptt=8")

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.emb = nn.Embedding(self.vocab_size, cfg.embed)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = CELLS[cfg.cell](
            cfg.embed,
            cfg.hidden,
            num_layers=cfg.n_layer,
            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(cfg.hidden, self.vocab_size)

    def run(self, ids: torch.Tensor, h: State | None = None) -> tuple[torch.Tensor, State]:
        """(B, T) ids and a carried state -> (B, T, V) logits and the state after them."""
        x = self.drop(self.emb(ids))  # (B, T, E)
        outs = []
        for s in range(0, ids.shape[1], self.cfg.bptt):  # truncated BPTT windows
            if h is not None:
                h = _detach(h)
            y, h = self.rnn(x[:, s : s + self.cfg.bptt], h)  # (B, w, H)
            outs.append(y)
        y = torch.cat(outs, dim=1)  # (B, T, H)
        return self.head(self.drop(y)), h  # (B, T, V)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.run(ids)[0]

    def cached_stepper(self) -> StateStepper:
        return StateStepper(self)

    def freeze(self, k: int) -> None:
        """Stop training the embedding and the first k recurrent layers (fine-tuning)."""
        if not 0 <= k <= self.cfg.n_layer:
            raise UsageError(
                f"train.freeze_layers must be between 0 and model.n_layer ({self.cfg.n_layer}); "
                f"got {k}"
            )
        self.emb.requires_grad_(False)
        for name, p in self.rnn.named_parameters():
            layer = int(name.rsplit("_l", 1)[1])  # weight_ih_l0, bias_hh_l1, ...
            if layer < k:
                p.requires_grad_(False)


STEP_CELLS = {"rnn": torch.rnn_tanh_cell, "gru": torch.gru_cell, "lstm": torch.lstm_cell}
"""One time step of one layer of each cell, as `nn.RNN` / `nn.GRU` / `nn.LSTM` compute it."""


class StateStepper:
    """Carries the hidden state: the prompt is read by `RNN.run`, then each new token costs one
    recurrent step, computed layer by layer with the cell functions of `STEP_CELLS` on the
    model's own weights: the same function as `RNN.run` on one token (tested), without the
    set-up of a whole-sequence recurrent kernel (oneDNN's, on CPUs) per token. The steps apply
    no dropout whatever the model's mode (sampling runs in eval mode)."""

    def __init__(self, model: RNN) -> None:
        self.model, self.h = model, None
        self.cell = STEP_CELLS[model.cfg.cell]
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        self.weights = [  # each layer's (w_ih, w_hh, b_ih, b_hh)
            tuple(getattr(model.rnn, f"{name}_l{i}") for name in names)
            for i in range(model.cfg.n_layer)
        ]

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        logits, self.h = self.model.run(ids)
        return logits[:, -1]  # (B, V)

    def advance(self, token: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.emb.weight[token]  # (B, E)
        lstm = isinstance(self.h, tuple)
        hs, cs = self.h if lstm else (self.h, None)  # (L, B, H) each
        new_h, new_c = [], []
        for i, w in enumerate(self.weights):
            if lstm:
                h, c = self.cell(x, (hs[i], cs[i]), *w)
                new_c.append(c)
            else:
                h = self.cell(x, hs[i], *w)
            new_h.append(h)
            x = h
        self.h = (torch.stack(new_h), torch.stack(new_c)) if lstm else torch.stack(new_h)
        return m.head(x)  # (B, V)


def shakespeare_preset(run):
    """A 2-layer LSTM for character-level Tiny Shakespeare (char-rnn's recipe, smaller)."""
    run.model.cell, run.model.n_layer, run.model.hidden, run.model.embed = "lstm", 2, 256, 64
    run.model.seq_len, run.model.bptt, run.model.dropout = 128, 64, 0.1
    run.data.val_fraction, run.data.test_fraction = 0.1, 0.0
    t = run.train
    t.batch_size, t.steps, t.lr, t.warmup_steps = 32, 2000, 2e-3, 100
    t.eval_every, t.eval_batches = 250, 100
    return run


def jsb_preset(run):
    """Polyphonic music (JSB Chorales, event tokens): a 2-layer LSTM with dropout, read over
    128 tokens, the training pieces transposed by up to 6 semitones each way
    (data.sequence.transpose, training only)."""
    run.model.cell, run.model.n_layer, run.model.hidden, run.model.embed = "lstm", 2, 256, 64
    run.model.seq_len, run.model.bptt, run.model.dropout = 128, 128, 0.3
    run.data.sequence.transpose = 6
    t = run.train
    t.batch_size, t.steps, t.lr, t.warmup_steps = 32, 3000, 2e-3, 50
    t.eval_every, t.eval_batches = 250, 0
    return run


PRESETS = {"shakespeare": shakespeare_preset, "jsb": jsb_preset}
