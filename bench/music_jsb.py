"""gpt and rnn on the JSB Chorales: exact test NLL per time step after a time budget.

Each family trains with its `jsb` preset (or the preset named by --preset, plus --set
overrides) on `jsb-chorales-quarter.json` (the quarter-note grid of the published figures;
its own train/valid/test split). The budget is CPU time of this process, so that a shared
machine gives the same number of steps as an idle one: the number of optimizer steps that fits
`--minutes` is found by timing a few steps first (process CPU time). Evaluation then scores
every test chorale from its first step (`nll_nats_per_step`: the sum over one step's pitch
tokens and its STEP token, averaged over the 4,725 test steps), the figure comparable with
RNN-NADE's 5.56, TCN's 8.10 and LSTM's 8.45 nats (Bai et al. 2018). Sampling speed is time
steps of music per second at batch 1.

The process runs on `--threads` threads (default 1: the machine is shared).

Prints key=value lines: <family>_test_nll_per_step, <family>_train_cpu_seconds and
<family>_train_wall_seconds (the whole `genlab.train` call, validation included),
<family>_steps, <family>_sampling_steps_per_s (wall clock: lower on a loaded machine), and the
settings.

    python bench/music_jsb.py --minutes 4
    python bench/music_jsb.py --minutes 30 --families gpt
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.config import apply_overrides
from genlab.metrics.evaluate import evaluate
from genlab.run import build_model, load_data, read_run
from genlab.runconfig import default_config
from genlab.training.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GENLAB_SHARED_DATA") or ROOT.parent / "shared" / "data")
DEFAULT_DATA = SHARED / "jsb_chorales" / "jsb-chorales-quarter.json"


def seconds_per_step(family: str, preset: str, overrides: list[str], data: str) -> float:
    """The median CPU time of one training step (forward, backward, optimizer) of the recipe."""
    cfg = apply_overrides(default_config(family, preset), overrides)
    ds = load_data(cfg, data)
    torch.manual_seed(0)
    model = build_model(family, cfg.model, ds.info, ds.files).train()
    opt = build_optimizer(model, cfg.train)
    times = []
    for i in range(8):
        idx = torch.randint(len(ds.splits["train"]), (cfg.train.batch_size,))
        batch = ds.batch("train", idx)
        t0 = time.process_time()
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.process_time() - t0)
    return sorted(times)[len(times) // 2]


def sampling_steps_per_s(model, seconds: float = 5.0) -> float:
    """Time steps of music generated per second, one sample at a time."""
    step_token = model.info.record.high - model.info.record.low + 1
    g = torch.Generator().manual_seed(0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ids = model.sample(1, generator=g, max_new_tokens=200)
        steps += int((ids == step_token).sum())
    return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--minutes", type=float, default=4.0, help="training budget per family, CPU minutes"
    )
    p.add_argument("--families", nargs="+", default=["gpt", "rnn"])
    p.add_argument("--preset", default="jsb")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--keep", help="keep the run directories under this folder")
    a = p.parse_args()
    if not Path(a.data).exists():
        raise SystemExit(f"no JSB Chorales at {a.data}; give --data or set GENLAB_SHARED_DATA")
    torch.set_num_threads(a.threads)
    results: dict[str, float | int | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.keep or tmp)
        for family in a.families:
            per_step = seconds_per_step(family, a.preset, a.overrides, a.data)
            # about 10% of the budget goes to validation and checkpoints
            steps = max(20, int(a.minutes * 60 * 0.9 / per_step))
            run = root / f"{family}-{a.preset}"
            t0, c0 = time.perf_counter(), time.process_time()
            genlab.train(
                family,
                a.data,
                run,
                preset=a.preset,
                overrides=[*a.overrides, f"train.eval_every={max(steps // 5, 1)}"],
                steps=steps,
                quiet=True,
            )
            train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
            model = genlab.load(run)
            data = load_data(read_run(run)[1], a.data)
            m = evaluate(model, data, "test", progress=False)
            results[f"{family}_test_nll_per_step"] = round(m["nll_nats_per_step"], 4)
            results[f"{family}_test_steps"] = m["steps_scored"]
            results[f"{family}_train_cpu_seconds"] = round(train_cpu, 1)
            results[f"{family}_train_wall_seconds"] = round(train_s, 1)
            results[f"{family}_steps"] = steps
            results[f"{family}_parameters"] = sum(p.numel() for p in model.parameters())
            results[f"{family}_sampling_steps_per_s"] = round(sampling_steps_per_s(model), 1)
            print(f"{family}: {m['nll_nats_per_step']:.4f} nats/step", flush=True)
    results |= {"minutes": a.minutes, "threads": a.threads, "preset": a.preset}
    results["overrides"] = " ".join(a.overrides) or "none"
    for key, value in results.items():
        print(f"{key}={value}")


if __name__ == "__main__":
    main()
