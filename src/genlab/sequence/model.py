"""What every autoregressive family over token sequences shares: next-token loss, per-token
scores, and sampling of token ids.

A family subclasses `SequenceModel` and provides `logits(ids)` (training and scoring) and
`cached_stepper()` (decoding one position per step, see `genlab.sequence.decoding`); uncached
decoding recomputes `logits` on the sequence so far. Batches are `{"x": (B, T + 1) token ids}`
(stored in any numeric type): the model reads the first T and predicts the last T.

Nothing here knows what a token stands for: text (characters or BPE pieces; the text layer,
`genlab.text.lm.TextModel`, adds tokenizers, string prompts and streaming), audio (mu-law
levels) and music (note events) are all ids below `vocab_size`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from genlab.data import DataInfo
from genlab.data.kinds import KINDS as DATA_KINDS
from genlab.data.kinds import kind_of
from genlab.errors import DataError, RunError, UsageError
from genlab.models.base import GenerativeModel
from genlab.sequence.decoding import Recompute, Stepper, check_options, generate

KINDS = tuple(name for name, kind in DATA_KINDS.items() if kind.tokens)
"""Data kinds whose examples can be token sequences with a vocabulary size (their `tokens`), in
the order of the data-kind registry."""


def vocab_size_of(info: DataInfo) -> int:
    """The number of token ids of a token data set (0 when its description has none)."""
    return int(getattr(info.record, "vocab_size", 0) or 0)


def _context_setting(cfg: Any) -> str:
    """The name of the model setting that holds the context (e.g. model.block_size), as the
    family's configuration declares it (`context_key`, which every sequence family sets)."""
    return f"model.{type(cfg).context_key}"


class SequenceModel(GenerativeModel):
    """Base of autoregressive token models (gpt, rnn)."""

    kinds: ClassVar[tuple[str, ...]] = KINDS
    """The data kinds this family reads."""

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        super().__init__(cfg, info)
        if info.kind not in self.kinds:
            raise DataError(
                f"'{self.family}' needs token sequences ({', '.join(self.kinds)} data) but "
                f"'{info.source}' is {info.kind} data; pick another family or data set "
                "(see 'genlab list')"
            )
        vocab_size = vocab_size_of(info)
        if vocab_size < 1:
            raise RunError(f"the data description of '{info.source}' has no vocabulary size")
        self.vocab_size = vocab_size
        if info.shape and info.shape[0] != cfg.context:
            setting = _context_setting(cfg)
            raise UsageError(
                f"the data was cut into windows of {info.shape[0]} tokens but the model's "
                f"context ({setting}) is {cfg.context}; load the data with the model's "
                f"context, or set {setting}={info.shape[0]} to match the data"
            )

    # to implement -----------------------------------------------------------------------------
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) logits of each next token."""
        raise NotImplementedError

    def cached_stepper(self) -> Stepper:
        """A stepper that computes one new position per step (a cache, a carried state)."""
        raise NotImplementedError

    max_context: int | None = None
    """The most tokens `logits` reads (a fixed context), or None for any length."""

    # decoding ---------------------------------------------------------------------------------
    def stepper(self, cached: bool = True, **how: Any) -> Stepper:
        """A decoding stepper; `cached=False` recomputes the (windowed) sequence every step.
        `how` holds a family's own decoding choices, passed to its `cached_stepper`."""
        return self.cached_stepper(**how) if cached else Recompute(self.logits, self.max_context)

    # training and scoring ---------------------------------------------------------------------
    def token_nll(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T) negative log-likelihood in nats of each predicted token."""
        x = batch["x"].long()  # (B, T + 1)
        logits = self.logits(x[:, :-1])  # (B, T, V)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten(), reduction="none")
        return nll.view(x.shape[0], -1)

    @torch.no_grad()
    def sequence_nll(self, ids: torch.Tensor) -> torch.Tensor:
        """(L,) ids of one whole sequence -> (L - 1,) NLL in nats of each token after the first.

        Read in one pass when the model has no fixed context or the sequence fits in it; else
        in windows of `max_context` tokens that move by half a context, each scoring only the
        tokens the previous window did not, so every token sees at least half a context."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device).flatten()
        window, n = self.max_context, ids.numel() - 1
        if n < 1:
            return torch.zeros(0, device=self.device)
        if window is None or n <= window:
            return self.token_nll({"x": ids[None]})[0]
        out = [self.token_nll({"x": ids[None, : window + 1]})[0]]  # targets 1..window
        done, stride = window, max(1, window // 2)
        while done < n:
            end = min(done + stride, n)  # score targets done+1..end
            nll = self.token_nll({"x": ids[None, end - window : end + 1]})[0]  # (window,)
            out.append(nll[done - end :])
            done = end
        return torch.cat(out)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"].long()  # (B, T + 1)
        logits = self.logits(x[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())
        return {"loss": loss}

    def nll(self, batch: dict[str, torch.Tensor], *, generator=None) -> torch.Tensor:
        """Exact negative log-likelihood in nats of each example's T predicted tokens, (B,)."""
        return self.token_nll(batch).sum(1)

    def units(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tokens `nll` scores in each example, (B,)."""
        x = batch["x"]
        return {"token": torch.full((x.shape[0],), x.shape[1] - 1, dtype=torch.long)}

    # sampling ---------------------------------------------------------------------------------
    def start_ids(self) -> list[int]:
        """What sampling without a prompt conditions on: the data kind's start tokens (music:
        BOS), else token 0."""
        return kind_of(self.info).start_tokens(self.info) or [0]

    def prompt_file_ids(self, path: str | Path) -> list[int]:
        """The token ids of a prompt file, read by the data kind (music: a MIDI opening)."""
        return [int(i) for i in kind_of(self.info).prompt_tokens(Path(path), self.info)]

    def prompt_ids(self, prompt: Sequence[int] | torch.Tensor) -> list[int]:
        """A prompt of token ids, checked against the vocabulary."""
        if isinstance(prompt, str):
            raise UsageError(
                f"this model's data is {self.info.kind}, not text: give the prompt as token ids"
            )
        ids = [int(i) for i in (prompt.flatten().tolist() if torch.is_tensor(prompt) else prompt)]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise UsageError(
                f"the prompt holds token ids outside 0..{self.vocab_size - 1}: "
                f"{', '.join(map(str, bad[:5]))}"
            )
        return ids

    @torch.inference_mode()
    def generate_ids(
        self,
        ids: torch.Tensor,
        max_new_tokens: int,
        *,
        cached: bool = True,
        stepper_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """(B, T0) ids -> (B, T0 + max_new_tokens) ids (see `decoding.generate` options;
        `stepper_options` go to the family's cached stepper).

        Changes no process-global state (threads, oneDNN): the caller owns those."""
        stepper = self.stepper(cached, **(stepper_options or {}))
        return generate(stepper, ids.to(self.device), max_new_tokens, **options)

    def continue_ids(
        self,
        n: int,
        prompt: list[int],
        max_new_tokens: int,
        on_token: Callable[[torch.Tensor], None] | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """(n, len(prompt) + max_new_tokens): the prompt and the tokens drawn after it (an empty
        prompt conditions on `start_ids`, which are not returned)."""
        context = prompt or self.start_ids()
        ids = torch.tensor([context] * n, dtype=torch.long, device=self.device)  # (n, T0)
        out = self.generate_ids(ids, max_new_tokens, on_token=on_token, **options)
        return out[:, len(context) - len(prompt) :]

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        prompt: Sequence[int] | torch.Tensor = (),
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        cached: bool = True,
        stepper_options: dict[str, Any] | None = None,
        prompt_file: str | Path | None = None,
    ) -> Any:
        """(n, len(prompt) + max_new_tokens) token ids: the prompt and the tokens drawn after it.

        `prompt_file`: a file the data kind reads as the prompt instead (music: a MIDI opening).
        Only the last tokens of a prompt longer than a fixed context condition the model."""
        check_options(
            max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p
        )
        if n < 1:
            raise UsageError(f"the number of samples must be at least 1; got {n}")
        if prompt_file is not None and len(prompt):
            raise UsageError("give a prompt or a prompt file, not both")
        ids = self.prompt_ids(prompt) if prompt_file is None else self.prompt_file_ids(prompt_file)
        return self.continue_ids(
            n,
            ids,
            max_new_tokens,
            cached=cached,
            stepper_options=stepper_options,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
        )
