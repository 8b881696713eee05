"""Benchmark: the diffusion family (`ddpm`, `mnist` preset) on full MNIST under a wall-clock budget.

    python bench/diffusion_mnist.py --minutes 30

Calibrates the step time on a short run, sizes the run so the cosine learning-rate schedule ends
when the budget does, trains, then reports:

- `fd_ddpm_1000`, `fd_ddim_50`, `fd_ddim_10`: Frechet distance between --fd-samples generated
  images (1000-step ancestral DDPM; 50- and 10-step DDIM with eta 0) and the 10,000 MNIST test
  images, in the features of genlab's frozen `cnn` (genlab.metrics.features; not Inception, so
  the numbers are not comparable with published FIDs, only with each other). `fd_real` is the
  same distance for as many real training images: the floor at this sample size.
- `sample_ms_per_image_*`: wall-clock time per image, batches of --sample-batch.
- `test_bits_per_dim`: the variational bound (Ho et al. 2020) on the test set, with the sum over
  timesteps estimated from --bound-timesteps draws per image (0 = the full sum).

The DDIM paper's trade-off on CIFAR-10: 50 DDIM steps reach FID 4.67 against 4.04 for 1000
steps, 20x cheaper; `fd_ddim_50_over_ddpm_1000` shows where genlab stands. Published
reference (CIFAR-10, Ho et al. 2020): FID 3.17, NLL <= 3.70 bits/dim.
Prints key=value lines last.
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.judges import judge
from genlab.metrics.evaluate import evaluate
from genlab.metrics.quality import embed, frechet_distance
from genlab.run import load_data, read_run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"


def calibrate(
    family: str, data: str, preset: str, overrides: list[str], steps: int, clock=time.perf_counter
) -> float:
    """Seconds per optimizer step on `clock` (wall, or time.process_time for this process's CPU
    time), without start-up costs (two short runs, difference)."""

    def timed(n: int, tmp: str) -> float:
        t0 = clock()
        genlab.train(
            family, data, Path(tmp) / f"cal{n}", preset=preset, overrides=overrides, steps=n,
            quiet=True,
        )  # fmt: skip
        return clock() - t0

    with tempfile.TemporaryDirectory() as tmp:
        return (timed(10 + steps, tmp) - timed(10, tmp)) / steps


@torch.no_grad()
def timed_samples(sample, n: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, float]:
    """n images from `sample(m, generator)` in batches, and milliseconds per image."""
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    images = torch.cat([sample(min(batch, n - i), g).cpu() for i in range(0, n, batch)])
    return images, 1000 * (time.perf_counter() - t0) / n


class Judge:
    """Frechet distance to the test set in the frozen `cnn`'s features (shared metric code)."""

    def __init__(self, data_dir: str, dataset) -> None:
        self.extractor = judge(data_dir, progress=sys.stderr.isatty())
        test = dataset.splits["test"]
        self.test_f, _ = embed(self.extractor, self._images(dataset, "test", len(test)))
        self.dataset = dataset

    @staticmethod
    def _images(dataset, split: str, n: int) -> torch.Tensor:
        return dataset.batch(split, torch.arange(n))["x"]

    def fd(self, images: torch.Tensor) -> float:
        feats, _ = embed(self.extractor, images)
        return frechet_distance(self.test_f, feats)

    def fd_real(self, n: int) -> float:
        """The same distance for n real training images (the floor at this sample size)."""
        idx = torch.randperm(len(self.dataset.splits["train"]), generator=torch.Generator())[:n]
        return self.fd(self.dataset.batch("train", idx)["x"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-diffusion-mnist"))
    p.add_argument("--preset", default="mnist")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--fd-samples", type=int, default=500, help="generated images per FD")
    p.add_argument("--sample-batch", type=int, default=250)
    p.add_argument("--bound-timesteps", type=int, default=16, help="0 = the full sum")
    p.add_argument("--nll-examples", type=int, default=0, help="test images for bits/dim (0=all)")
    p.add_argument("--calibration-steps", type=int, default=30)
    a = p.parse_args()
    if not Path(a.data).exists():
        print(f"MNIST not found at {a.data}; pass --data DIR with the IDX files", file=sys.stderr)
        return 1

    step_s = calibrate("ddpm", a.data, a.preset, a.overrides, a.calibration_steps)
    steps = max(50, int(a.minutes * 60 / step_s * 0.95))
    print(f"calibration: {step_s * 1000:.0f} ms/step -> {steps} steps", file=sys.stderr)

    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    genlab.train(
        "ddpm", a.data, out, preset=a.preset, overrides=a.overrides, steps=steps,
        quiet=not sys.stderr.isatty(),
    )  # fmt: skip
    train_seconds = time.perf_counter() - t0

    model = genlab.load(out)  # EMA weights
    _, cfg, _ = read_run(out)
    data = load_data(cfg, a.data)
    judge = Judge(a.data, data)
    n, T = a.fd_samples, cfg.model.timesteps
    runs = [("ddim", min(10, T)), ("ddim", min(50, T)), ("ddpm", T)]  # ddpm: every timestep
    names = [f"{sampler}_{k}" for sampler, k in runs]
    results: dict[str, float] = {}
    for name, (sampler, k) in zip(names, runs, strict=True):
        print(f"sampling {n} images with {name}", file=sys.stderr)
        images, ms = timed_samples(
            lambda m, g, s=sampler, k=k: model.sample(m, generator=g, sampler=s, steps=k, eta=0.0),
            n,
            a.sample_batch,
        )
        results[f"fd_{name}"] = judge.fd(images)
        results[f"sample_ms_per_image_{name}"] = ms
    results["fd_real"] = judge.fd_real(n)

    if a.nll_examples:
        data.splits["test"].x = data.splits["test"].x[: a.nll_examples]
        data.splits["test"].y = data.splits["test"].y[: a.nll_examples]
    m = evaluate(
        model, data, "test", batch_size=250, nll_options={"bound_timesteps": a.bound_timesteps},
        progress=sys.stderr.isatty(),
    )  # fmt: skip

    print(f"checkpoint={model.checkpoint}")
    print(f"parameters={sum(p.numel() for p in model.parameters())}")
    print(f"steps={steps}")
    print(f"train_seconds={train_seconds:.1f}")
    print(f"train_step_ms={step_s * 1000:.1f}")
    print(f"fd_samples={n}")
    print(f"fd_real={results['fd_real']:.3f}")
    for name in reversed(names):
        print(f"fd_{name}={results[f'fd_{name}']:.3f}")
    print(
        f"fd_{names[1]}_over_{names[2]}={results[f'fd_{names[1]}'] / results[f'fd_{names[2]}']:.3f}"
    )
    for name in (names[2], names[0], names[1]):
        print(f"sample_ms_per_image_{name}={results[f'sample_ms_per_image_{name}']:.1f}")
    print(f"test_examples={m['examples']}")
    print(f"bound_timesteps={a.bound_timesteps}")
    print(f"test_bits_per_dim_stderr={m['nll_nats_stderr'] / (model.dims * math.log(2)):.4f}")
    print(f"test_bits_per_dim={m['bits_per_dim']:.4f}")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
