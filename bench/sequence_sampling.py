"""Small-batch CPU sampling speed of the sequence models (gpt, rnn), in tokens/s.

Builds untrained models of the benchmark sizes (speed does not depend on the weights): gpt as
the `shakespeare-cpu` preset (4 layers x 4 heads x 128, context 64, 65 tokens), rnn as its
`shakespeare` preset (2-layer LSTM of 256, embedding 64), and an rnn with GRU cells. Each
contender draws `--tokens` tokens at batch `--batch` from a one-token prompt; contenders are
interleaved, `--rounds` rounds, and each figure is the median over rounds (min and max
printed beside it: the machine may be shared).

Contenders, each under the process's settings ("lib": what a library call gets) and under
1 thread with oneDNN off ("1t_nodnn", the settings genlab's sampling used to force itself;
`--modes` adds "1t" and "nodnn", one of the two):
- gpt_fused: the KV cache through the fused step (what `model.generate_ids` uses);
- gpt_module: the KV cache through the model's own modules (`cached_stepper(fused=False)`);
- gpt_uncached: recomputing the last 64 tokens every step;
- lstm / gru: the carried state (`model.generate_ids`: one cell-function step per layer);
- lstm_kernel / gru_kernel: the carried state through the whole-sequence recurrent kernel
  (`RNN.run`) on each new token, the step genlab used before.

Prints key=value lines: <contender>_<settings>_tokens_per_s, and its _min / _max.

    python bench/sequence_sampling.py --rounds 7
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from genlab.data import DataInfo
from genlab.models.gpt import GPT
from genlab.models.gpt import Config as GPTConfig
from genlab.models.rnn import RNN
from genlab.models.rnn import Config as RNNConfig
from genlab.sequence.decoding import generate

VOCAB = 65  # Tiny Shakespeare's characters


def info(context: int) -> DataInfo:
    return DataInfo(
        source="bench", kind="sequence", shape=[context], levels=0, num_classes=0, task="none",
        vocab_size=VOCAB,
    )  # fmt: skip


MODES = {"lib": (None, None), "1t": (1, None), "nodnn": (None, False), "1t_nodnn": (1, False)}
"""Settings -> (threads, oneDNN) set around a contender; None keeps the process's."""


@contextlib.contextmanager
def settings(name: str) -> Iterator[None]:
    """The process's own settings ("lib"), or those of MODES[name] for the duration."""
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    want_threads, want_onednn = MODES[name]
    if want_threads is not None:
        torch.set_num_threads(want_threads)
    if want_onednn is not None:
        torch.backends.mkldnn.enabled = want_onednn
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn


def contenders(batch: int) -> dict[str, Callable[[int], torch.Tensor]]:
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64), info(64)).eval()
    lstm = RNN(RNNConfig(cell="lstm", n_layer=2, hidden=256, embed=64), info(128)).eval()
    gru = RNN(RNNConfig(cell="gru", n_layer=2, hidden=256, embed=64), info(128)).eval()
    ids = torch.zeros(batch, 1, dtype=torch.long)

    def draw(model, cached=True):
        return lambda k: model.generate_ids(
            ids, k, cached=cached, generator=torch.Generator().manual_seed(1)
        )

    def cached_gpt(fused: bool) -> Callable[[int], torch.Tensor]:
        def run(k: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(1)
            with torch.inference_mode():
                return generate(gpt.cached_stepper(fused=fused), ids, k, generator=g)

        return run

    def kernel_steps(model: RNN) -> Callable[[int], torch.Tensor]:
        class KernelStepper:
            def start(self, ids: torch.Tensor) -> torch.Tensor:
                logits, self.h = model.run(ids)
                return logits[:, -1]

            def advance(self, token: torch.Tensor) -> torch.Tensor:
                logits, self.h = model.run(token[:, None], self.h)
                return logits[:, -1]

        def run(k: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(1)
            with torch.inference_mode():
                return generate(KernelStepper(), ids, k, generator=g)

        return run

    return {
        "gpt_fused": cached_gpt(True),
        "gpt_module": cached_gpt(False),
        "gpt_uncached": draw(gpt, cached=False),
        "lstm": draw(lstm),
        "lstm_kernel": kernel_steps(lstm),
        "gru": draw(gru),
        "gru_kernel": kernel_steps(gru),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=300)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default="", help="comma-separated contenders (default: all)")
    p.add_argument(
        "--modes", default="lib,1t_nodnn", help=f"comma-separated, of {', '.join(MODES)}"
    )
    a = p.parse_args()
    runs = contenders(a.batch)
    if a.only:
        runs = {k: v for k, v in runs.items() if k in a.only.split(",")}
    rates: dict[str, list[float]] = {}
    for _ in range(a.rounds):
        for name, draw in runs.items():
            for mode in a.modes.split(","):
                with settings(mode):
                    draw(20)  # warm-up
                    t0 = time.perf_counter()
                    draw(a.tokens)
                    rate = a.tokens * a.batch / (time.perf_counter() - t0)
                rates.setdefault(f"{name}_{mode}", []).append(rate)
    print(f"threads={torch.get_num_threads()}")
    print(f"onednn={torch.backends.mkldnn.enabled}")
    print(f"batch={a.batch}")
    print(f"rounds={a.rounds}")
    for key, r in rates.items():
        print(f"{key}_tokens_per_s={np.median(r):.0f}")
        print(f"{key}_tokens_per_s_min={min(r):.0f}")
        print(f"{key}_tokens_per_s_max={max(r):.0f}")


if __name__ == "__main__":
    main()
