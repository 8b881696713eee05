"""Autoregressive decoding, separate from the networks that produce the logits.

A network hands decoding a *stepper*: `start(ids)` reads the prompt and returns the logits of
the next token, `advance(token)` appends one token and returns the logits after it. The loop
below picks tokens (temperature, top-k, nucleus/top-p, or greedy) until it has enough.

`Recompute` is the stepper of any network: it runs the whole (windowed) sequence every step.
Families add a cached stepper of their own (a key/value cache, a carried hidden state) that
gives the same logits for one position per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from genlab.errors import RunError, UsageError


class Stepper(Protocol):
    def start(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T0) prompt ids -> (B, V) logits of the next token."""
        ...

    def advance(self, token: torch.Tensor) -> torch.Tensor:
        """(B,) ids just chosen -> (B, V) logits of the token after them."""
        ...


class Recompute:
    """Runs `logits` on the sequence so far every step: the reference every cached stepper
    equals. `window`: only the last `window` tokens are read (a model with a fixed context)."""

    def __init__(
        self, logits: Callable[[torch.Tensor], torch.Tensor], window: int | None = None
    ) -> None:
        self.logits, self.window, self.ids = logits, window, torch.empty(0)

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        self.ids = ids
        return self._last()

    def advance(self, token: torch.Tensor) -> torch.Tensor:
        self.ids = torch.cat([self.ids, token[:, None]], dim=1)
        return self._last()

    def context(self) -> torch.Tensor:
        """The tokens the latest logits were predicted from."""
        return self.ids if self.window is None else self.ids[:, -self.window :]

    def _last(self) -> torch.Tensor:
        return self.logits(self.context())[:, -1]  # (B, V)


def check_options(
    *,
    max_new_tokens: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> None:
    """One-line UsageErrors for sampling options that cannot work."""
    if max_new_tokens < 0:
        raise UsageError(f"--max-new-tokens must be 0 or more; got {max_new_tokens}")
    if not temperature > 0:
        greedy = "; for greedy decoding use --top-k 1" if temperature == 0 else ""
        raise UsageError(f"--temperature must be positive; got {temperature}{greedy}")
    if top_k is not None and top_k <= 0:
        raise UsageError(f"--top-k must be a positive number of tokens; got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1]; got {top_p}")


def filter_logits(
    logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """(B, V) logits with every token outside the top-k / the top-p nucleus set to -inf."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each token
        drop_sorted = before >= top_p  # the top token is always kept (before = 0)
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, V) logits -> (B,) chosen ids: the argmax when greedy, else a draw."""
    if greedy:
        return logits.argmax(-1)
    logits = logits.float() if temperature == 1 else logits.float() / temperature
    probs = torch.softmax(filter_logits(logits, top_k=top_k, top_p=top_p), dim=-1)
    # An exact draw without torch.multinomial's set-up (a noticeable part of a step): the first of
    # independent exponential clocks with rates `probs` to ring is token i with probability
    # probs[i]; a token of probability 0 never rings first.
    clocks = torch.empty_like(probs).exponential_(generator=generator).clamp_min_(1e-30)
    token = (probs / clocks).argmax(-1)
    if torch.isnan(probs.sum()):  # argmax would pick a NaN's index: say what happened instead
        raise RunError(
            "the model's next-token probabilities are not numbers (NaN): its weights may have "
            "diverged (retrain from an earlier checkpoint), or the temperature is too small"
        )
    return token


@torch.inference_mode()
def generate(
    stepper: Stepper,
    ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    on_token: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """(B, T0) prompt ids -> (B, T0 + max_new_tokens) ids; `on_token` sees each (B,) step."""
    check_options(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    if max_new_tokens == 0:
        return ids
    new = []
    logits = stepper.start(ids)
    for i in range(max_new_tokens):
        token = next_token(
            logits,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            greedy=greedy,
            generator=generator,
        )
        new.append(token)
        if on_token is not None:
            on_token(token)
        if i + 1 < max_new_tokens:
            logits = stepper.advance(token)
    return torch.cat([ids, torch.stack(new, dim=1)], dim=1)
