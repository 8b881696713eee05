"""Benchmark: SimCLR on MNIST under a time budget, then its linear probe and kNN accuracy.

    python bench/simclr_mnist.py --seconds 300 --threads 1
    python bench/simclr_mnist.py --seconds 60 --data digits       # the built-in 8x8 digits

Trains the `simclr` family with its `mnist` preset (lightly's recipe: the 32-64-128-128 backbone,
batch 256, temperature 0.5, Adam 1e-3) through genlab's one training loop, sized by a short
calibration run so that the whole training call, data loading included, fits the budget. Then scores
the frozen encoder on the test split: a linear probe (logistic regression) and a k=200 weighted kNN
learnt from the labelled train split, beside the same probes on a random encoder and on raw pixels.
Also times the batched views alone. `images_per_s` counts images (two views each) per second of
training steps, as the loop logs them (evaluation excluded), and `images_per_cpu_s` the same per
second of this process's CPU time (the whole run), the fairer figure on a machine shared with other
jobs.
Prints key=value lines last.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.augment import views
from genlab.metrics.probes import probe_report
from genlab.run import load_data, read_run

ROOT = Path(__file__).resolve().parents[1]


def loop_rate(run: Path) -> float:
    """Mean examples/s of the loop's logged training windows (the first one left out)."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["examples_per_s"] for r in rows if r["split"] == "train"]
    rates = rates[1:] or rates
    return sum(rates) / len(rates)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=300.0, help="training wall-clock budget")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument(
        "--probe-examples", type=int, default=0, help="labelled train examples the probes use"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--calibration-steps", type=int, default=15)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.data != "digits" and not Path(a.data).exists():
        print(f"MNIST not found at {a.data}; pass --data DIR with the IDX files", file=sys.stderr)
        return 1
    over = [
        *a.overrides,
        f"train.batch_size={a.batch_size}",
        "train.log_every=5",
        "train.eval_batches=2",
        "train.keep_last=1",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-simclr-") as tmp:
        # 1. calibrate: seconds per step from the loop's own rate on a short run, and the
        # run's fixed cost (loading the data, building the model) from its wall clock
        tc = time.perf_counter()
        cal = genlab.train(
            "simclr",
            a.data,
            Path(tmp) / "calibration",
            preset="mnist",
            overrides=over,
            steps=a.calibration_steps,
            device=a.device,
            quiet=True,
        )
        cal_s = time.perf_counter() - tc
        per_step = a.batch_size / loop_rate(cal) * 1.05  # + evaluations and checkpoints
        fixed = max(0.0, cal_s - a.calibration_steps * per_step)
        steps = max(10, int((a.seconds - fixed) / per_step))
        eval_every = max(steps // 4, 1)
        # 2. train for the budget
        t0, c0 = time.perf_counter(), time.process_time()
        run = genlab.train(
            "simclr",
            a.data,
            Path(tmp) / "run",
            preset="mnist",
            overrides=[*over, f"train.eval_every={eval_every}"],
            steps=steps,
            device=a.device,
            quiet=True,
        )
        train_s = time.perf_counter() - t0
        # CPU time of the whole run (evaluations and checkpoints too): on a loaded machine,
        # images per CPU-second is closer to what the code does on an idle one
        images_per_cpu_s = steps * a.batch_size / (time.process_time() - c0)
        images_per_s = loop_rate(run)
        # 3. probes on the frozen encoder, beside a random one and raw pixels
        model = genlab.load(run, which="latest", device=a.device)
        _, cfg, info = read_run(run)
        data = load_data(cfg, info.source)
        t1 = time.perf_counter()
        figures = probe_report(model, data, "test", probe_examples=a.probe_examples or None)
        probe_s = time.perf_counter() - t1
        # 4. the views alone: ms per image of a batch
        x = data.batch("train", torch.arange(a.batch_size))["x"].to(model.device)
        g = torch.Generator(device=model.device).manual_seed(0)
        views(x, model.view_cfg, generator=g)
        t2 = time.perf_counter()
        for _ in range(5):
            views(x, model.view_cfg, generator=g)
        aug_ms = (time.perf_counter() - t2) / (5 * a.batch_size) * 1e3

    print(f"data={info.source}")
    print(f"threads={torch.get_num_threads()}")
    print(f"batch_size={a.batch_size}")
    print(f"steps={steps}")
    print(f"train_seconds={train_s:.1f}")
    print(f"images_per_s={images_per_s:.1f}")
    print(f"images_per_cpu_s={images_per_cpu_s:.1f}")
    print(f"bf16={cfg.train.bf16}")
    print(f"augment_ms_per_image={aug_ms:.3f}")
    print(f"probe_seconds={probe_s:.1f}")
    for key, value in figures.items():
        print(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
