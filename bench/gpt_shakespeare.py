"""Character-level GPT on Tiny Shakespeare with nanoGPT's small CPU configuration.

Trains `gpt` (preset `shakespeare-cpu`: n_layer 4, n_head 4, n_embd 128, no biases, block_size
64, batch_size 12, dropout 0, AdamW betas (0.9, 0.99), weight decay 0.1, clipping 1.0, lr 1e-3
with 100 warm-up steps and cosine decay to 1e-4 at the last step, 90/10 split) through genlab's
own loop, then measures sampling 500 new tokens at batch 1, with and without the key/value cache.

Because the machine may be shared, the script can also time a plain re-implementation of
nanoGPT's model and training step (`--reference-iters`, same configuration, same process,
interleaved with genlab's own steps) and print the ratio, which is robust to load that the
absolute figures are not.

Prints key=value lines last: train_tokens_per_s, val_loss, sample_tokens_per_s,
sample_tokens_per_s_uncached, peak_rss_mb (and the reference figures when asked).

    python bench/gpt_shakespeare.py                      # the full benchmark (2000 steps)
    python bench/gpt_shakespeare.py --steps 50 --reference-iters 20   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import genlab
from genlab.train.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


# a plain nanoGPT-style reference (model + training step), for a same-process speed ratio -----
class RefBlock(nn.Module):
    def __init__(self, c: int, nh: int) -> None:
        super().__init__()
        self.nh = nh
        self.ln_1, self.ln_2 = nn.LayerNorm(c, bias=False), nn.LayerNorm(c, bias=False)
        self.c_attn, self.c_proj = nn.Linear(c, 3 * c, bias=False), nn.Linear(c, c, bias=False)
        self.fc, self.proj = nn.Linear(c, 4 * c, bias=False), nn.Linear(4 * c, c, bias=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.nh, c // self.nh).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class RefGPT(nn.Module):
    def __init__(self, vocab: int, block: int = 64, c: int = 128, nh: int = 4, n: int = 4):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(block, c)
        self.h = nn.ModuleList(RefBlock(c, nh) for _ in range(n))
        self.ln_f = nn.LayerNorm(c, bias=False)
        self.lm_head = nn.Linear(c, vocab, bias=False)
        self.wte.weight = self.lm_head.weight
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


class Reference:
    """nanoGPT's train.py step on CPU: random windows from a memmap, AdamW, clipping."""

    def __init__(self, tokens: np.ndarray, vocab: int) -> None:
        torch.manual_seed(1337)
        self.tokens, self.model = tokens, RefGPT(vocab)
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        self.opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))

    def step(self) -> None:
        ix = torch.randint(len(self.tokens) - 64, (12,))
        x = torch.stack([torch.from_numpy(self.tokens[i : i + 64].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(self.tokens[i + 1 : i + 65].astype(np.int64)) for i in ix]
        )
        loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


# the benchmark -------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(DATA), help="the corpus (default: Tiny Shakespeare)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--out", help="run directory to keep (default: a temporary one)")
    p.add_argument("--sample-tokens", type=int, default=500)
    p.add_argument(
        "--reference-iters",
        type=int,
        default=0,
        help="time this many nanoGPT-style reference steps and as many genlab steps, "
        "interleaved in blocks of 10, and print the ratio",
    )
    a = p.parse_args()
    if not Path(a.data).exists():
        sys.exit(f"no corpus at {a.data}; give --data PATH")
    tmp = tempfile.TemporaryDirectory(prefix="gpt-bench-")
    out = Path(a.out) if a.out else Path(tmp.name) / "run"
    overrides = ["train.eval_every=2000", "train.eval_batches=0", "train.device=cpu"]

    # time the optimizer steps only: evaluations and checkpoints are not training throughput
    step_time = {"s": 0.0, "n": 0}
    step_once = Trainer.train_step

    def timed_step(self, step):
        t0 = time.perf_counter()
        result = step_once(self, step)
        if step >= 10:  # the first steps warm up
            step_time["s"] += time.perf_counter() - t0
            step_time["n"] += 1
        return result

    Trainer.train_step = timed_step
    t0 = time.perf_counter()
    genlab.train("gpt", a.data, out, preset="shakespeare-cpu", steps=a.steps, overrides=overrides)
    wall = time.perf_counter() - t0
    Trainer.train_step = step_once
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    val_loss = [r for r in rows if r["split"] == "val"][-1]["loss"]
    tokens_per_step = 12 * 64
    train_tps = step_time["n"] * tokens_per_step / max(step_time["s"], 1e-9)

    model = genlab.load(out, which="latest")
    results = {}
    for cached in (True, False):
        ids = torch.tensor([model.start_ids()])
        g = torch.Generator().manual_seed(1)
        model.generate_ids(ids, 20, cached=cached, generator=g)  # warm-up
        t0 = time.perf_counter()
        model.generate_ids(ids, a.sample_tokens, cached=cached, generator=g)
        results[cached] = a.sample_tokens / (time.perf_counter() - t0)
    text = model.sample(1, prompt="ROMEO:", max_new_tokens=200, temperature=0.8, top_k=50)[0]
    print("--- sample (temperature 0.8, top-k 50) ---")
    print(text)
    print("---")

    figures = {}
    if a.reference_iters:
        from genlab.run import load_data, read_run

        _, cfg, _ = read_run(out)
        data = load_data(cfg, a.data, run_dir=out)
        ref = Reference(np.asarray(data.splits["train"].tokens), data.info.vocab_size)
        mine = _fresh_trainer(cfg, data, Path(tmp.name) / "ratio")
        t_ref = t_mine = 0.0
        for _ in range(3):  # warm-up
            ref.step()
            mine.train_step(0)
        done = 0
        while done < a.reference_iters:
            k = min(10, a.reference_iters - done)
            t0 = time.perf_counter()
            for _ in range(k):
                ref.step()
            t1 = time.perf_counter()
            for i in range(k):
                mine.train_step(done + i)
            t2 = time.perf_counter()
            t_ref, t_mine, done = t_ref + t1 - t0, t_mine + t2 - t1, done + k
        figures["reference_train_tokens_per_s"] = done * tokens_per_step / t_ref
        figures["genlab_train_tokens_per_s_interleaved"] = done * tokens_per_step / t_mine
        figures["train_speedup_vs_reference"] = t_ref / t_mine

    figures |= {
        "steps": a.steps,
        "train_seconds": round(wall, 1),
        "train_tokens_per_s": round(train_tps),
        "val_loss": round(val_loss, 4),
        "val_bits_per_char": round(val_loss / math.log(2), 4),
        "sample_tokens_per_s": round(results[True]),
        "sample_tokens_per_s_uncached": round(results[False]),
        "sample_speedup_cached": round(results[True] / results[False], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    for k, v in figures.items():
        print(f"{k}={round(v, 3) if isinstance(v, float) else v}")


def _fresh_trainer(cfg, data, run_dir: Path) -> Trainer:
    """genlab's trainer on a fresh gpt, for timing its steps next to the reference's."""
    from genlab.run import build_model

    torch.manual_seed(0)
    model = build_model("gpt", cfg.model, data.info, data.files)
    return Trainer(model, data, cfg.train, run_dir, total_steps=10**6, quiet=True)


if __name__ == "__main__":
    main()
