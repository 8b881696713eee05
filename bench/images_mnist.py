"""Benchmark: image families side by side on full MNIST under one wall-clock budget each.

    python bench/images_mnist.py --minutes 30
    python bench/images_mnist.py --minutes 10 --families vae,gan,pixelcnn,ddpm
    # one family per process, 30 CPU-minutes of one core each, the table assembled at the end:
    python bench/images_mnist.py --minutes 30 --threads 1 --cpu-budget --families vae &
    python bench/images_mnist.py --minutes 30 --threads 1 --cpu-budget --families gan &
    wait; python bench/images_mnist.py --minutes 30 --threads 1 --cpu-budget

Runs `genlab bench` (genlab.bench) with each family's `mnist` preset: the default families are
vae, gan (DCGAN generator), style (gan with `model.generator=style`), pixelcnn and ddpm. Every
family is trained on
the same 60,000 images (less the validation split) for the same budget, sized by a short
calibration so that its schedule ends with the budget, then judged on the 10,000 test images
(likelihoods, where a family has one) and on `--samples` generated images in the features of
the frozen in-house `cnn` (Frechet distance, KID, precision/recall, density/coverage, class
coverage, memorization), each figure next to real test images against real training images.
Writes OUT/comparison.md, OUT/comparison.json and OUT/samples-FAMILY.png; prints key=value
lines last, per family: FAMILY_fd, FAMILY_nll_nats (where defined), FAMILY_train_seconds,
FAMILY_sample_ms_per_image, and more.

Reference points on binarized MNIST (nats): PixelCNN 81.30 (van den Oord et al. 2016),
VAE 89.8 / IWAE 86.8 (pythae, K=200). GAN and diffusion have no likelihood to compare.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

from genlab.bench import bench, parse_families, split_entry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from budget import add_budget_args, apply_threads  # noqa: E402

FAMILIES = "vae,gan,style=gan,pixelcnn,ddpm"
STYLE = "style:model.generator=style"
"""The second GAN run's generator, added when the label `style` is among --families."""
KEYS = [
    "fd",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "classes_covered",
    "class_kl",
    "memorization_ratio",
    "nll_nats",
    "bits_per_dim",
    "parameters",
    "steps",
    "train_seconds",
    "train_cpu_seconds",
    "sample_ms_per_image",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--minutes",
        type=float,
        default=30.0,
        help="training budget of each family (wall clock; CPU time with --cpu-budget)",
    )
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-images-mnist"))
    p.add_argument("--families", default=FAMILIES, help="entries FAMILY or LABEL=FAMILY")
    p.add_argument("--samples", type=int, default=1000, help="generated images per family")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="mnist")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--feature-steps", type=int, default=2000)
    p.add_argument("--calibration-steps", type=int, default=10)
    p.add_argument("--nll-examples", type=int, default=0, help="0: all 10,000 test images")
    add_budget_args(p)
    a = p.parse_args()
    apply_threads(a)
    if not Path(a.data).exists():
        print(f"MNIST not found at {a.data}; pass --data DIR with the IDX files", file=sys.stderr)
        return 1

    families = parse_families(a.families)
    overrides = list(a.overrides)
    if "style" in [split_entry(e)[0] for e in families] and not any(
        o.startswith("style:model.generator=") for o in overrides
    ):
        overrides.append(STYLE)
    t0 = time.perf_counter()
    comparison = bench(
        a.data,
        a.out,
        families=families,
        budget_minutes=a.minutes,
        samples=a.samples,
        seed=a.seed,
        preset=a.preset,
        overrides=overrides,
        feature_steps=a.feature_steps,
        calibration_steps=a.calibration_steps,
        nll_examples=a.nll_examples,
        quiet=not sys.stderr.isatty(),
        cpu_budget=a.cpu_budget,
    )
    total = time.perf_counter() - t0
    print((Path(a.out) / "comparison.md").read_text())

    print(f"budget_minutes={a.minutes}")
    print(f"cpu_budget={a.cpu_budget}")
    print(f"threads={torch.get_num_threads()}")
    print(f"samples={a.samples}")
    print(f"feature_extractor_test_accuracy={comparison['feature_extractor_test_accuracy']:.4f}")
    for key in ("fd", "kid", "precision", "recall", "density", "coverage", "class_kl"):
        if key in comparison["real"]:
            print(f"real_{key}={comparison['real'][key]:.4f}")
    for family, r in comparison["families"].items():
        for key in KEYS:
            if key in r:
                value = r[key]
                print(f"{family}_{key}={value:.4f}" if isinstance(value, float) else
                      f"{family}_{key}={value}")  # fmt: skip
    print(f"total_seconds={total:.1f}")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
