"""Benchmark: a likelihood family (vae or pixelcnn) on full, dynamically binarized MNIST under a
time budget.

    python bench/likelihood_mnist.py --minutes 30                          # vae, 30 wall minutes
    python bench/likelihood_mnist.py --minutes 30 --threads 1 --cpu-budget # 30 CPU-minutes, 1 core
    python bench/likelihood_mnist.py --family pixelcnn --minutes 60 --threads 2 --cpu-budget

With --cpu-budget the budget is this process's CPU time, so other load on the machine stretches
the wall time but not the amount of training.

Calibrates the step time on a short run, sizes the run to the budget (so the cosine schedule
ends when the time does), trains with the `mnist` preset, then reports the test NLL: the VAE's
importance-weighted estimate (K samples, default 200, as pythae's reproduction), the PixelCNN's
exact NLL. Prints key=value lines last.

Reference points for binarized MNIST: VAE 89.8 nats and IWAE 86.8 nats (pythae, K=200),
2-layer IWAE 82.9 nats (Burda et al. 2016), PixelCNN 81.30 nats (van den Oord et al. 2016).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.metrics.evaluate import evaluate
from genlab.run import load_data, read_run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from budget import add_budget_args, apply_threads  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--family", default="vae", choices=["vae", "pixelcnn"])
    p.add_argument(
        "--minutes",
        type=float,
        default=30.0,
        help="training budget (wall clock; CPU time with --cpu-budget)",
    )
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--out", default=None, help="run folder (default runs/bench-FAMILY-mnist)")
    p.add_argument("--preset", default="mnist")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--iw-samples", type=int, default=200, help="vae: importance samples")
    p.add_argument("--calibration-steps", type=int, default=60)
    p.add_argument(
        "--step-seconds",
        type=float,
        help="seconds per step measured beforehand: skips the calibration (two short runs)",
    )
    p.add_argument(
        "--test-examples", type=int, default=None, help="score the first N test images (all)"
    )
    add_budget_args(p)
    a = p.parse_args()
    apply_threads(a)
    if not Path(a.data).exists():
        print(f"MNIST not found at {a.data}; pass --data DIR with the IDX files", file=sys.stderr)
        return 1

    # 1. calibrate: seconds per optimizer step, without start-up costs (two runs, difference)
    clock = time.process_time if a.cpu_budget else time.perf_counter

    def timed(steps: int, tmp: str) -> float:
        t0 = clock()
        genlab.train(
            a.family,
            a.data,
            Path(tmp) / f"cal{steps}",
            preset=a.preset,
            overrides=a.overrides,
            steps=steps,
            quiet=True,
        )
        return clock() - t0

    if a.step_seconds:
        step_s = a.step_seconds
    else:
        with tempfile.TemporaryDirectory() as tmp:
            short, long = 10, 10 + a.calibration_steps
            step_s = (timed(long, tmp) - timed(short, tmp)) / a.calibration_steps
    steps = max(100, int(a.minutes * 60 / step_s * 0.97))
    print(
        f"calibration: {step_s * 1000:.1f} ms/step -> {steps} steps in {a.minutes} min",
        file=sys.stderr,
    )

    # 2. train for the budget
    out = Path(a.out or ROOT / "runs" / f"bench-{a.family}-mnist")
    shutil.rmtree(out, ignore_errors=True)
    t0, c0 = time.perf_counter(), time.process_time()
    genlab.train(
        a.family,
        a.data,
        out,
        preset=a.preset,
        overrides=a.overrides,
        steps=steps,
        quiet=not sys.stderr.isatty(),
    )
    train_seconds = time.perf_counter() - t0
    train_cpu_seconds = time.process_time() - c0

    # 3. evaluate on the 10,000 test images
    model = genlab.load(out)
    _, cfg, info = read_run(out)
    data = load_data(cfg, a.data)
    t0 = time.perf_counter()
    with torch.no_grad():
        m = evaluate(
            model,
            data,
            "test",
            batch_size=250,
            options={"iw_samples": a.iw_samples} if a.family == "vae" else None,
            max_examples=a.test_examples,
            progress=sys.stderr.isatty(),
        )
    eval_seconds = time.perf_counter() - t0
    batch = cfg.train.batch_size

    print(f"threads={torch.get_num_threads()}")
    print(f"checkpoint={model.checkpoint}")
    print(f"steps={steps}")
    print(f"step_seconds={step_s:.4f}")
    print(f"family={a.family}")
    print(f"test_examples={m['examples']}")
    if a.family == "vae":
        print(f"iw_samples={a.iw_samples}")
        print(f"test_neg_elbo_nats={m['neg_elbo_nats']:.3f}")
    print(f"test_nll_nats={m['nll_nats']:.3f}")
    if "nll_nats_stderr" in m:
        print(f"test_nll_nats_stderr={m['nll_nats_stderr']:.3f}")
    print(f"test_bits_per_dim={m['bits_per_dim']:.5f}")
    print(f"eval_seconds={eval_seconds:.1f}")
    print(f"train_cpu_seconds={train_cpu_seconds:.1f}")
    print(f"train_seconds={train_seconds:.1f}")
    print(f"examples_per_second={steps * batch / train_seconds:.1f}")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
