"""Character-level GPT on Tiny Shakespeare with nanoGPT's small CPU configuration.

Trains `gpt` (preset `shakespeare-cpu`: n_layer 4, n_head 4, n_embd 128, no biases, block_size
64, batch_size 12, dropout 0, AdamW betas (0.9, 0.99), weight decay 0.1, clipping 1.0, lr 1e-3
with 100 warm-up steps and cosine decay to 1e-4 at the last step, 90/10 split) through genlab's
own loop, then measures sampling 500 new tokens at batch 1 on one thread (as the command line
decodes a small batch), with and without the key/value cache.

The preset turns on bfloat16 matrix products where the CPU has native bfloat16 arithmetic
(printed as bf16=True); nanoGPT runs in float32 on a CPU.

The reference is nanoGPT itself: its own `model.py` (commit 3adf61e, MIT) from
`../shared/anchors/nanogpt/`, never copied into genlab. `--reference-iters N` times N steps of
nanoGPT's `GPT` with its own `configure_optimizers`, in float32 as nanoGPT runs on a CPU, and
as many genlab steps (in its precision and in float32), interleaved in blocks of 10 in the same
process, and prints the ratios, which are robust to load that absolute figures are not.
Sampling is timed in a fresh process with the same runtime settings on both sides: the same
thread count (1, then the default), both under torch.inference_mode, oneDNN left at its
default; nanoGPT's `generate` against genlab's key/value cache in both context modes
('rebuild': the cache is refilled from the last half of the context when it fills; 'exact':
every token sees the last block_size tokens, as in nanoGPT) and against genlab's uncached
recompute. `--reference-quality` also trains nanoGPT for as many steps and scores it on the
same validation windows as genlab (nanoGPT's own figure is an estimate from random batches).
`--bf16 false` trains genlab in float32, to show what bfloat16 costs in loss.

Prints key=value lines last: train_tokens_per_s, val_loss, sample_tokens_per_s (cached,
rebuild), sample_tokens_per_s_exact, sample_tokens_per_s_uncached, peak_rss_mb, and with
--reference-iters the nanoGPT figures and ratios (train_speedup_vs_nanogpt,
sample_speedup_vs_nanogpt_{rebuild,exact}_t{threads}).

    python bench/gpt_shakespeare.py                      # the full benchmark (2000 steps)
    python bench/gpt_shakespeare.py --reference-iters 300 --reference-quality   # and nanoGPT
    python bench/gpt_shakespeare.py --steps 50 --reference-iters 20   # a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
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
from tqdm import tqdm

import genlab
from anchors import nanogpt, nanogpt_model, to_nanogpt
from genlab.run import load_data, read_run
from genlab.training.loop import Trainer
from genlab.training.runtime import resolve_bf16

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


# nanoGPT: its own model and optimizer, driven as its train.py drives them on a CPU ------------
class Reference:
    """nanoGPT's `GPT` and `configure_optimizers`, stepped as its train.py does on a CPU
    (float32): random windows from the token array, its warm-up + cosine schedule, clipping."""

    def __init__(self, module, tokens: np.ndarray, cfg, vocab: int, steps: int, seed: int):
        torch.manual_seed(seed)
        self.tokens, self.steps, self.it = tokens, steps, 0
        self.block, self.batch = cfg.model.block_size, cfg.train.batch_size
        self.model = nanogpt_model(module, vocab, cfg.model)
        t = cfg.train
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter groups
            self.opt = self.model.configure_optimizers(t.weight_decay, t.lr, tuple(t.betas), "cpu")
        self.lr_max, self.lr_min, self.warmup = t.lr, t.lr * t.min_lr_ratio, t.warmup_steps

    def lr(self) -> float:  # nanoGPT's get_lr
        if self.it < self.warmup:
            return self.lr_max * self.it / self.warmup
        ratio = min(1.0, (self.it - self.warmup) / (self.steps - self.warmup))
        return self.lr_min + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (self.lr_max - self.lr_min)

    def step(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.lr()
        b = self.block
        ix = torch.randint(len(self.tokens) - b, (self.batch,))
        x = torch.stack([torch.from_numpy(self.tokens[i : i + b].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(self.tokens[i + 1 : i + 1 + b].astype(np.int64)) for i in ix]
        )
        _, loss = self.model(x, y)
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
            total += self.model(x[:, :-1], x[:, 1:].contiguous())[1].item() * len(x)
        return total / n


# the benchmark -------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(DATA), help="the corpus (default: Tiny Shakespeare)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--out", help="run directory to keep (default: a temporary one)")
    p.add_argument("--sample-tokens", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="genlab's seed (nanoGPT's is 1337 + it)")
    p.add_argument(
        "--bf16",
        choices=["auto", "true", "false"],
        default="auto",
        help="genlab's train.bf16 (the preset's: auto); false trains in float32 like nanoGPT",
    )
    p.add_argument(
        "--reference-iters",
        type=int,
        default=0,
        help="time this many nanoGPT steps and as many genlab steps, interleaved in blocks of "
        "10, print the ratios, and time nanoGPT's sampler beside genlab's",
    )
    p.add_argument(
        "--reference-quality",
        action="store_true",
        help="also train nanoGPT for --steps iterations and print its validation loss on "
        "genlab's validation windows (about 1.5 minutes more)",
    )
    a = p.parse_args()
    if not Path(a.data).exists():
        sys.exit(f"no corpus at {a.data}; give --data PATH")
    module, why = nanogpt()
    if (a.reference_iters or a.reference_quality) and module is None:
        sys.exit(f"{why}; run without --reference-iters / --reference-quality")
    tmp = tempfile.TemporaryDirectory(prefix="gpt-bench-")
    out = Path(a.out) if a.out else Path(tmp.name) / "run"
    overrides = ["train.eval_every=2000", "train.eval_batches=0", "train.device=cpu"]
    overrides.append(f"train.bf16={a.bf16}")

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
    _, cfg, _ = read_run(out)
    tokens_per_step = cfg.train.batch_size * cfg.model.block_size
    train_tps = step_time["n"] * tokens_per_step / max(step_time["s"], 1e-9)

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

    bf16 = resolve_bf16(cfg.train.bf16, torch.device("cpu"))
    figures = {"bf16": bf16}
    vocab = data.info.record.vocab_size
    if a.reference_iters:  # ratios measured side by side, robust to other load on the machine
        tokens = np.asarray(data.splits["train"].tokens)
        ref = Reference(module, tokens, cfg, vocab, a.steps, seed=1337 + a.seed)
        trainers = {"genlab": _fresh_trainer(cfg, data, Path(tmp.name) / "ratio")}
        if bf16:  # and genlab in float32, nanoGPT's precision on a CPU
            fp32 = copy.deepcopy(cfg)
            fp32.train.bf16 = False
            trainers["genlab_fp32"] = _fresh_trainer(fp32, data, Path(tmp.name) / "ratio32")
        seconds = dict.fromkeys(["nanogpt", *trainers], 0.0)
        steps = {"nanogpt": lambda i: ref.step()}
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
        figures["nanogpt_train_tokens_per_s"] = done * tokens_per_step / seconds["nanogpt"]
        for name in trainers:
            figures[f"{name}_train_tokens_per_s_interleaved"] = (
                done * tokens_per_step / seconds[name]
            )
            suffix = "_fp32" if name.endswith("fp32") else ""
            figures[f"train_speedup_vs_nanogpt{suffix}"] = seconds["nanogpt"] / seconds[name]
        for key, rate in results.items():
            if key.startswith("nanogpt_t"):
                threads = key.removeprefix("nanogpt_")
                figures[f"nanogpt_sample_tokens_per_s_{threads}"] = rate
                for mode in ("rebuild", "exact", "uncached"):
                    ours = results[f"{mode}_{threads}"]
                    figures[f"sample_speedup_vs_nanogpt_{mode}_{threads}"] = ours / rate
    if a.reference_quality:  # nanoGPT trained for as many steps, scored on the same windows
        tokens = np.asarray(data.splits["train"].tokens)
        ref = Reference(module, tokens, cfg, vocab, a.steps, seed=1337 + a.seed)
        for _ in tqdm(range(a.steps), desc="nanoGPT", unit="step", leave=False):
            ref.step()
        ref.model.eval()
        figures["nanogpt_val_loss"] = ref.val_loss(data)

    figures |= {
        "steps": a.steps,
        "seed": a.seed,
        "train_seconds": round(wall, 1),
        "train_tokens_per_s": round(train_tps),
        "val_loss": round(val_loss, 4),
        "val_bits_per_char": round(val_loss / math.log(2), 4),
        "sample_tokens_per_s": round(results["rebuild_t1"]),
        "sample_tokens_per_s_exact": round(results["exact_t1"]),
        "sample_tokens_per_s_uncached": round(results["uncached_t1"]),
        "sample_speedup_cached": round(results["rebuild_t1"] / results["uncached_t1"], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    for k, v in figures.items():
        print(f"{k}={round(v, 3) if isinstance(v, float) else v}")


def sampling_rates(run: str, n: int, reference: bool) -> dict[str, float]:
    """Tokens/s of sampling `run` at batch 1, keyed `{contender}_t{threads}`: genlab's cache in
    both context modes and its uncached recompute (and nanoGPT's `generate` on the same weights),
    each at 1 thread and at the default thread count, all under torch.inference_mode; the
    median of 5 interleaved rounds."""
    model = genlab.load(run, which="latest")
    ids = torch.tensor([model.start_ids()])
    g = torch.Generator().manual_seed(1)
    contenders = {
        "rebuild": lambda k: model.generate_ids(ids, k, generator=g),
        "exact": lambda k: model.generate_ids(
            ids, k, generator=g, stepper_options={"context": "exact"}
        ),
        "uncached": lambda k: model.generate_ids(ids, k, generator=g, cached=False),
    }
    if reference:
        module, _ = nanogpt()
        ref = to_nanogpt(module, model)
        contenders["nanogpt"] = lambda k: ref.generate(ids, k)
    threads = sorted({1, torch.get_num_threads()})
    rates: dict[str, list[float]] = {f"{c}_t{t}": [] for c in contenders for t in threads}
    for _ in range(5):
        for t in threads:
            for name, generate in contenders.items():
                with torch.inference_mode():
                    _with_threads(t, generate, 20)  # warm-up
                    t0 = time.perf_counter()
                    _with_threads(t, generate, n)
                    rates[f"{name}_t{t}"].append(n / (time.perf_counter() - t0))
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
    """genlab's trainer on a fresh gpt, for timing its steps next to nanoGPT's."""
    from genlab.run import build_model

    torch.manual_seed(0)
    model = build_model("gpt", cfg.model, data.info, data.files)
    return Trainer(model, data, cfg.train, run_dir, total_steps=10**6, quiet=True)


if __name__ == "__main__":
    main()
