"""Character-level GPT on Tiny Shakespeare with nanoGPT's small CPU configuration.

Trains `gpt` (preset `shakespeare-cpu`: n_layer 4, n_head 4, n_embd 128, no biases, block_size
64, batch_size 12, dropout 0, AdamW betas (0.9, 0.99), weight decay 0.1, clipping 1.0, lr 1e-3
with 100 warm-up steps and cosine decay to 1e-4 at the last step, 90/10 split) through genlab's
own loop, then measures sampling 500 new tokens at batch 1 on one thread (as the command line
decodes a small batch), with and without the key/value cache.

The preset turns on bfloat16 matrix products where the CPU has native bfloat16 arithmetic
(printed as bf16=True); nanoGPT runs in float32 on a CPU.

Because the machine may be shared, the script can also time a plain re-implementation of
nanoGPT's model, training step and sampler (`--reference-iters`: same configuration, same
process, steps interleaved in blocks of 10 with genlab's own, in its precision and in float32)
and print the ratios, which are robust to load that the absolute figures are not.
`--reference-quality` also trains that reference for as many steps and scores it on the same
validation windows as genlab (nanoGPT's own figure is an estimate from random batches).

Prints key=value lines last: train_tokens_per_s, val_loss, sample_tokens_per_s,
sample_tokens_per_s_uncached, peak_rss_mb (and the reference figures when asked).

    python bench/gpt_shakespeare.py                      # the full benchmark (2000 steps)
    python bench/gpt_shakespeare.py --reference-iters 200 --reference-quality   # and nanoGPT
    python bench/gpt_shakespeare.py --steps 50 --reference-iters 20   # a smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import genlab
from genlab.run import load_data, read_run
from genlab.training.loop import Trainer
from genlab.training.runtime import resolve_bf16

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
        for name, p in self.named_parameters():  # nanoGPT's init, residual projections scaled
            if p.dim() >= 2:
                scaled = name.endswith("c_proj.weight") or name.endswith(".proj.weight")
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n) if scaled else 0.02)

    def forward(self, idx, targets=None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int):
        """nanoGPT's sampler: the whole (cropped) context through the model for every token."""
        for _ in range(max_new_tokens):
            logits = self(idx[:, -64:])[:, -1, :]
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
        return idx


class Reference:
    """nanoGPT's train.py step on CPU (float32, as nanoGPT runs there): random windows from a
    memmap, AdamW, its warm-up + cosine schedule, clipping."""

    def __init__(self, tokens: np.ndarray, vocab: int, steps: int = 2000, seed: int = 1337):
        torch.manual_seed(seed)
        self.tokens, self.model, self.steps, self.it = tokens, RefGPT(vocab), steps, 0
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        self.opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))

    def lr(self) -> float:
        if self.it < 100:
            return 1e-3 * self.it / 100
        ratio = min(1.0, (self.it - 100) / (self.steps - 100))
        return 1e-4 + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1e-3 - 1e-4)

    def step(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.lr()
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
        self.it += 1

    @torch.no_grad()
    def val_loss(self, data) -> float:
        """Mean loss per token over genlab's validation windows (the same ones genlab scores)."""
        n, total = len(data.splits["val"]), 0.0
        for start in range(0, n, 64):
            x = data.batch("val", torch.arange(start, min(n, start + 64)))["x"]
            total += self.model(x[:, :-1], x[:, 1:].contiguous()).item() * len(x)
        return total / n


# the benchmark -------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(DATA), help="the corpus (default: Tiny Shakespeare)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--out", help="run directory to keep (default: a temporary one)")
    p.add_argument("--sample-tokens", type=int, default=500)
    p.add_argument(
        "--seed", type=int, default=0, help="genlab's seed (the reference's is 1337 + it)"
    )
    p.add_argument(
        "--reference-iters",
        type=int,
        default=0,
        help="time this many nanoGPT-style reference steps and as many genlab steps, "
        "interleaved in blocks of 10, and print the ratio",
    )
    p.add_argument(
        "--reference-quality",
        action="store_true",
        help="also train the nanoGPT-style reference for --steps iterations and print its "
        "validation loss on genlab's validation windows (about 1.5 minutes more)",
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
    genlab.train(
        "gpt",
        a.data,
        out,
        preset="shakespeare-cpu",
        steps=a.steps,
        seed=a.seed,
        overrides=overrides,
    )
    wall = time.perf_counter() - t0
    Trainer.train_step = step_once
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    val_loss = [r for r in rows if r["split"] == "val"][-1]["loss"]
    tokens_per_step = 12 * 64
    train_tps = step_time["n"] * tokens_per_step / max(step_time["s"], 1e-9)

    _, cfg, _ = read_run(out)
    data = load_data(cfg, a.data, run_dir=out)
    # sampling in a fresh process, as `genlab sample` and nanoGPT's sample.py run (a process that
    # has just trained decodes small operations ~15% slower: allocator and thread-pool state)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        results = pool.apply(sampling_rates, (str(out), a.sample_tokens, bool(a.reference_iters)))
    model = genlab.load(out, which="latest")
    text = model.sample(1, prompt="ROMEO:", max_new_tokens=200, temperature=0.8, top_k=50)[0]
    print("--- sample (temperature 0.8, top-k 50) ---")
    print(text)
    print("---")

    bf16 = resolve_bf16(cfg.train.bf16, torch.device("cpu"))  # "auto" in the preset
    figures = {"bf16": bf16}
    if a.reference_iters:  # ratios measured side by side, robust to other load on the machine
        ref = Reference(np.asarray(data.splits["train"].tokens), data.info.record.vocab_size)
        trainers = {"genlab": _fresh_trainer(cfg, data, Path(tmp.name) / "ratio")}
        if bf16:  # and genlab in float32, nanoGPT's precision on a CPU
            fp32 = copy.deepcopy(cfg)
            fp32.train.bf16 = False
            trainers["genlab_fp32"] = _fresh_trainer(fp32, data, Path(tmp.name) / "ratio32")
        seconds = dict.fromkeys(["reference", *trainers], 0.0)
        steps = {"reference": lambda i: ref.step()}
        steps |= {name: trainer.train_step for name, trainer in trainers.items()}
        for step in steps.values():  # warm-up
            for i in range(3):
                step(i)
        done = 0
        while done < a.reference_iters:
            k = min(10, a.reference_iters - done)
            for name, step in steps.items():
                t0 = time.perf_counter()
                for i in range(k):
                    step(done + i)
                seconds[name] += time.perf_counter() - t0
            done += k
        figures["reference_train_tokens_per_s"] = done * tokens_per_step / seconds["reference"]
        for name in trainers:
            figures[f"{name}_train_tokens_per_s_interleaved"] = (
                done * tokens_per_step / seconds[name]
            )
            suffix = "_fp32" if name.endswith("fp32") else ""
            figures[f"train_speedup_vs_reference{suffix}"] = seconds["reference"] / seconds[name]
        best = max(v for k, v in results.items() if k.startswith("reference_"))
        figures["reference_sample_tokens_per_s"] = best
        figures["sample_speedup_vs_reference_uncached"] = results["cached"] / best
    if a.reference_quality:  # nanoGPT trained for as many steps, scored on the same windows
        tokens = np.asarray(data.splits["train"].tokens)
        ref = Reference(tokens, data.info.record.vocab_size, a.steps, seed=1337 + a.seed)
        for _ in tqdm(range(a.steps), desc="nanoGPT reference", unit="step", leave=False):
            ref.step()
        ref.model.eval()
        figures["reference_val_loss"] = ref.val_loss(data)

    figures |= {
        "steps": a.steps,
        "seed": a.seed,
        "train_seconds": round(wall, 1),
        "train_tokens_per_s": round(train_tps),
        "val_loss": round(val_loss, 4),
        "val_bits_per_char": round(val_loss / math.log(2), 4),
        "sample_tokens_per_s": round(results["cached"]),
        "sample_tokens_per_s_uncached": round(results["uncached"]),
        "sample_speedup_cached": round(results["cached"] / results["uncached"], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    for k, v in figures.items():
        print(f"{k}={round(v, 3) if isinstance(v, float) else v}")


def sampling_rates(run: str, n: int, reference: bool) -> dict[str, float]:
    """Tokens/s of genlab's cached and uncached sampling of `run` (and of nanoGPT's sampler at 1
    thread and at the default thread count): the median of 5 interleaved rounds of each."""
    model = genlab.load(run, which="latest")
    ids = torch.tensor([model.start_ids()])
    # one thread, as `genlab sample` decodes a small batch (library calls leave threads alone)
    contenders = {
        "cached": lambda k: _with_threads(
            1, model.generate_ids, ids, k, generator=torch.Generator().manual_seed(1)
        ),
        "uncached": lambda k: _with_threads(1, model.generate_ids, ids, k, cached=False),
    }
    if reference:  # its speed does not depend on its weights
        ref = RefGPT(model.vocab_size).eval()
        contenders |= {
            f"reference_{t}": lambda k, t=t: _with_threads(t, ref.generate, ids, k)
            for t in sorted({1, torch.get_num_threads()})
        }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(5):
        for name, generate in contenders.items():
            generate(20)  # warm-up
            t0 = time.perf_counter()
            generate(n)
            rates[name].append(n / (time.perf_counter() - t0))
    return {name: float(np.median(r)) for name, r in rates.items()}


def _with_threads(n: int, fn, *args, **kwargs):
    """fn(*args, **kwargs) on n threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(before)


def _fresh_trainer(cfg, data, run_dir: Path) -> Trainer:
    """genlab's trainer on a fresh gpt, for timing its steps next to the reference's."""
    from genlab.run import build_model

    torch.manual_seed(0)
    model = build_model("gpt", cfg.model, data.info, data.files)
    return Trainer(model, data, cfg.train, run_dir, total_steps=10**6, quiet=True)


if __name__ == "__main__":
    main()
