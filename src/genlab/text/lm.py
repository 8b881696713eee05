"""The text layer of the sequence models: tokenizers, string prompts, streaming, bits per
character.

`TextModel` is a `SequenceModel` that, on text data, speaks text: its tokenizer is part of the
data (saved in the run directory as `tokenizer.json` and handed over by `use_data_files` when
the run is loaded), `sample` takes a string prompt and returns strings (streamed piece by piece
on request), and `units` counts characters and UTF-8 bytes as well as tokens. On other token
data (audio, sequence) it is the plain `SequenceModel`: ids in, ids out, no tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from genlab.data import DataInfo
from genlab.errors import RunError, UsageError
from genlab.sequence.decoding import check_options
from genlab.sequence.model import SequenceModel
from genlab.text.tokenizer import FILE, Tokenizer, tokenizer_from_json


@dataclass(frozen=True)
class SampleOptions:
    prompt: str = ""
    """Text to continue (default: start after a newline)."""
    max_new_tokens: int | None = field(default=None, metadata={"metavar": "N"})
    """Tokens to generate after the prompt (default 200; on audio, one clip of the data)."""
    temperature: float = 1.0
    """Softmax temperature: below 1 sharper, above 1 more varied."""
    top_k: int | None = field(default=None, metadata={"metavar": "K"})
    """Draw only among the K likeliest tokens (1: greedy decoding)."""
    top_p: float | None = field(default=None, metadata={"metavar": "P"})
    """Draw from the smallest set of tokens whose probability mass is at least P (nucleus)."""
    prompt_file: str | None = field(
        default=None,
        metadata={"flag": "--prompt-midi", "metavar": "FILE", "aliases": ("--prompt-file",)},
    )
    """Music runs: a MIDI file (.mid) whose opening, quantised to the run's grid, every sample
    continues (the output starts with it)."""

    def validate(self) -> None:
        check_options(
            max_new_tokens=self.max_new_tokens or 0,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
        )


class TextModel(SequenceModel):
    """A sequence model that reads and writes text when its data is text (gpt, rnn)."""

    SampleOptions = SampleOptions
    tiny_data = "text"

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.tokenizer: Tokenizer | None = None

    @property
    def is_text(self) -> bool:
        """Whether the model's data is text (tokens of a tokenizer)."""
        return self.info.kind == "text"

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

    # scoring ----------------------------------------------------------------------------------
    def units(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Tokens (and on text: characters and UTF-8 bytes) that `nll` scores, each (B,)."""
        out = super().units(batch)
        if not self.is_text:
            return out
        tok = self._need_tokenizer()
        target = batch["x"][:, 1:].long().cpu()  # (B, T)
        out["char"] = torch.from_numpy(tok.token_chars)[target].sum(1)
        out["byte"] = torch.from_numpy(tok.token_bytes)[target].sum(1)
        return out

    # sampling ---------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        """Ids of a text prompt."""
        return self._need_tokenizer().encode(prompt, what="the prompt", error=UsageError)

    def start_ids(self) -> list[int]:
        """What an empty prompt conditions on: a newline when the vocabulary has one."""
        if not self.is_text:
            return super().start_ids()
        try:
            return self._need_tokenizer().encode("\n", error=UsageError)
        except UsageError:
            return [0]

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        prompt: str | Sequence[int] | torch.Tensor = "",
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stream: Callable[[str], None] | None = None,
        cached: bool = True,
        stepper_options: dict[str, Any] | None = None,
        prompt_file: str | None = None,
    ) -> Any:
        """On text, n strings: the prompt and max_new_tokens tokens drawn after it (default 200);
        on other token data, ids as `SequenceModel.sample` (on audio, by default one clip as long
        as the data's).

        `stream` (text, n == 1) receives the prompt, then the new text piece by piece as it is
        generated. A prompt longer than a fixed context is kept whole in the text but only its
        last context-length tokens condition the model.
        """
        if max_new_tokens is None:  # audio: one clip as long as the data's
            max_new_tokens = int(self.info.shape[0]) if self.info.kind == "audio" else 200
        options = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k)
        options |= dict(top_p=top_p, generator=generator, cached=cached)
        options |= dict(stepper_options=stepper_options)
        if not self.is_text:
            if stream is not None:
                raise UsageError(f"streaming is for text; this model's data is {self.info.kind}")
            if isinstance(prompt, str) and not prompt:  # the text default: no prompt
                prompt = ()
            return super().sample(n, prompt=prompt, prompt_file=prompt_file, **options)
        if prompt_file is not None:
            raise UsageError("a prompt file is for music runs; give a text prompt with --prompt")
        check_options(
            max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p
        )
        if n < 1:
            raise UsageError(f"the number of samples must be at least 1; got {n}")
        if stream is not None and n != 1:
            raise UsageError("streaming works on one sample at a time; use n=1")
        if not isinstance(prompt, str):
            raise UsageError("this model's data is text: give the prompt as a string")
        tok = self._need_tokenizer()
        prompt_ids = self.encode_prompt(prompt) if prompt else []
        on_token = None
        if stream is not None:
            stream(prompt)
            streamer = tok.streamer()

            def on_token(token: torch.Tensor) -> None:
                piece = streamer.feed(token.tolist())
                if piece:
                    stream(piece)

        out = self.continue_ids(n, prompt_ids, on_token=on_token, **options)
        if stream is not None:
            tail = streamer.flush()
            if tail:
                stream(tail)
        new = out[:, len(prompt_ids) :].tolist()
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
