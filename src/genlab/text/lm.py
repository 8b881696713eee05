"""What every language-model family shares: next-token loss, per-token scores, text sampling.

A family subclasses `LanguageModel` and provides `logits(ids)` (training and scoring) and
`stepper(cached)` (decoding, see `genlab.text.decoding`). Batches of text data are
`{"x": (B, T + 1) token ids}`: the model reads the first T and predicts the last T.

The tokenizer is part of the data: it is saved in the run directory as `tokenizer.json` and
handed to the model by `use_data_files` when the run is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from genlab.data import DataInfo
from genlab.errors import RunError, UsageError
from genlab.models.base import GenerativeModel
from genlab.text.decoding import Stepper, check_options, generate
from genlab.text.tokenizer import FILE, Tokenizer, tokenizer_from_json


@dataclass(frozen=True)
class SampleOptions:
    prompt: str = ""
    """Text to continue (default: start after a newline)."""
    max_new_tokens: int = 200
    """Tokens to generate after the prompt."""
    temperature: float = 1.0
    """Softmax temperature: below 1 sharper, above 1 more varied."""
    top_k: int | None = field(default=None, metadata={"metavar": "K"})
    """Draw only among the K likeliest tokens (1: greedy decoding)."""
    top_p: float | None = field(default=None, metadata={"metavar": "P"})
    """Draw from the smallest set of tokens whose probability mass is at least P (nucleus)."""

    def validate(self) -> None:
        check_options(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
        )


class LanguageModel(GenerativeModel):
    """Base of autoregressive token models (gpt, rnn)."""

    SampleOptions = SampleOptions
    tiny_data = "text"

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="text")
        if info.record.vocab_size < 1:
            raise RunError(f"the data description of '{info.source}' has no vocabulary size")
        self.vocab_size = info.record.vocab_size
        self.tokenizer: Tokenizer | None = None
        if info.shape and info.shape[0] != cfg.context:
            raise UsageError(
                f"the data was cut into windows of {info.shape[0]} tokens but the model's "
                f"context is {cfg.context}; load the data with the model's context"
            )

    # to implement -----------------------------------------------------------------------------
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) logits of each next token."""
        raise NotImplementedError

    def stepper(self, cached: bool = True) -> Stepper:
        """A decoding stepper; `cached=False` recomputes from the tokens each step."""
        raise NotImplementedError

    # data files -------------------------------------------------------------------------------
    def use_data_files(self, files: dict[str, bytes]) -> None:
        """Take the tokenizer from the data's files (the run directory's tokenizer.json)."""
        if FILE in files:
            self.tokenizer = tokenizer_from_json(files[FILE])
            if self.tokenizer.vocab_size != self.vocab_size:
                raise RunError(
                    f"{FILE} has {self.tokenizer.vocab_size} tokens but the model was built for "
                    f"{self.vocab_size}; the run directory is inconsistent"
                )

    def _need_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise RunError(
                f"this {self.family} model has no tokenizer; load it with genlab.load(RUN_DIR), "
                f"whose {FILE} it reads"
            )
        return self.tokenizer

    # training and scoring ---------------------------------------------------------------------
    def token_nll(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T) negative log-likelihood in nats of each predicted token."""
        x = batch["x"]  # (B, T + 1)
        logits = self.logits(x[:, :-1])  # (B, T, V)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten(), reduction="none")
        return nll.view(x.shape[0], -1)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]  # (B, T + 1)
        logits = self.logits(x[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())
        return {"loss": loss}

    def nll(self, batch: dict[str, torch.Tensor], *, generator=None) -> torch.Tensor:
        """Exact negative log-likelihood in nats of each example's T predicted tokens, (B,)."""
        return self.token_nll(batch).sum(1)

    def units(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Tokens, characters and UTF-8 bytes that `nll` scores in each example, each (B,)."""
        tok = self._need_tokenizer()
        target = batch["x"][:, 1:].cpu()  # (B, T)
        chars = torch.from_numpy(tok.token_chars)[target].sum(1)
        nbytes = torch.from_numpy(tok.token_bytes)[target].sum(1)
        tokens = torch.full((target.shape[0],), target.shape[1], dtype=torch.long)
        return {"token": tokens, "char": chars, "byte": nbytes}

    # sampling ---------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        """Ids of a prompt; an empty prompt starts after a newline (or token 0)."""
        tok = self._need_tokenizer()
        return tok.encode(prompt, what="the prompt", error=UsageError)

    def start_ids(self) -> list[int]:
        """What an empty prompt conditions on: a newline when the vocabulary has one."""
        tok = self._need_tokenizer()
        try:
            return tok.encode("\n", error=UsageError)
        except UsageError:
            return [0]

    @torch.inference_mode()
    def generate_ids(
        self,
        ids: torch.Tensor,
        max_new_tokens: int,
        *,
        cached: bool = True,
        **options: Any,
    ) -> torch.Tensor:
        """(B, T0) ids -> (B, T0 + max_new_tokens) ids (see `decoding.generate` options).

        On CPU, a small batch decodes on one thread and without oneDNN: its operations are too
        small to share, threads that wait on each other cost more than they save (far more on a
        busy machine), and oneDNN's set-up per call (~10 us for a GELU of 512 numbers) costs
        more than the work (an LSTM samples 6x faster without it, measured).
        """
        small = self.device.type == "cpu" and ids.shape[0] <= 8
        threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
        if small:
            torch.set_num_threads(1)
            torch.backends.mkldnn.enabled = False
        try:
            return generate(self.stepper(cached), ids.to(self.device), max_new_tokens, **options)
        finally:
            if small:
                torch.set_num_threads(threads)
                torch.backends.mkldnn.enabled = onednn

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        prompt: str = "",
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stream: Callable[[str], None] | None = None,
        cached: bool = True,
    ) -> list[str]:
        """n texts: the prompt and max_new_tokens tokens drawn after it.

        `stream` (only with n == 1) receives the prompt, then the new text piece by piece as it
        is generated.
        A prompt longer than the model's context is kept whole in the text but only its last
        context-length tokens condition the model.
        """
        check_options(
            max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p
        )
        if n < 1:
            raise UsageError(f"the number of samples must be at least 1; got {n}")
        if stream is not None and n != 1:
            raise UsageError("streaming works on one sample at a time; use n=1")
        tok = self._need_tokenizer()
        prompt_ids = self.encode_prompt(prompt) if prompt else []
        context = prompt_ids or self.start_ids()
        ids = torch.tensor([context] * n, dtype=torch.long, device=self.device)  # (n, T0)
        on_token = None
        if stream is not None:
            stream(prompt)
            streamer = tok.streamer()

            def on_token(token: torch.Tensor) -> None:
                piece = streamer.feed(token.tolist())
                if piece:
                    stream(piece)

        out = self.generate_ids(
            ids,
            max_new_tokens,
            cached=cached,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
            on_token=on_token,
        )
        if stream is not None:
            tail = streamer.flush()
            if tail:
                stream(tail)
        new = out[:, len(context) :].tolist()
        return [prompt + tok.decode(row) for row in new]

    def stream(
        self,
        emit: Callable[[str], None],
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> str:
        """One text handed to `emit` piece by piece as it is generated; returns it whole."""
        return self.sample(1, generator=generator, stream=emit, **options)[0]
