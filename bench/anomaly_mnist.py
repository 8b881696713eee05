"""Benchmark: one-class anomaly detection (train on one digit, the other nine are anomalies).

    python bench/anomaly_mnist.py --data digits --steps 400            # minutes on one core
    python bench/anomaly_mnist.py --families vae,pixelcnn --classes 0,1,2 \
        --set pixelcnn:model.channels=16 --set train.batch_size=32

For each family and each class k, trains the family on the class-k training images only
(`data.classes=[k]`), scores the whole test split with every score the family has (negative
ELBO and reconstruction error for the VAE, exact NLL for PixelCNN, the NLL bound for DDPM...),
and reports the AUROC with class k as normal, then the mean over classes per family and score.
The published one-class MNIST AUROC of Deep SVDD (Ruff et al. 2018), averaged over classes, is
0.948. Prints key=value lines last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

import genlab
from genlab.data import DataConfig, load_dataset
from genlab.metrics.anomaly import available_scores, detection_report

ROOT = Path(__file__).resolve().parents[1]
SCORES = {"vae": ["neg_elbo", "recon"]}
"""Scores per family (others: every score the family has); the VAE's IW-NLL is left out as
its 100 importance samples cost more than the rest of the bench."""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="digits", help="labelled images (default the built-in digits)")
    p.add_argument("--families", default="vae,pixelcnn")
    p.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--steps", type=int, default=400, help="training steps per family and class")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="key=value for every family, or FAMILY:key=value for one",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--test-examples",
        type=int,
        default=0,
        help="score a seeded random subset of this many test images (0: all of them)",
    )
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    families = [f for f in a.families.split(",") if f]
    classes = [int(k) for k in a.classes.split(",") if k]
    data = load_dataset(a.data, DataConfig())
    y = data.splits["test"].y
    subset = torch.arange(len(y))
    if a.test_examples and a.test_examples < len(y):
        g = torch.Generator().manual_seed(0)
        subset = torch.randperm(len(y), generator=g)[: a.test_examples].sort().values
    table: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-anomaly-") as tmp:
        for family in families:
            mine = [
                s.split(":", 1)[-1]
                for s in a.overrides
                if ":" not in s.split("=", 1)[0] or s.startswith(f"{family}:")
            ]
            for k in classes:
                run = genlab.train(
                    family,
                    a.data,
                    Path(tmp) / f"{family}-{k}",
                    overrides=[*mine, f"data.classes=[{k}]", "train.eval_every=100"],
                    steps=a.steps,
                    quiet=True,
                )
                model = genlab.load(run)
                normal = (data, "test", subset[y[subset] == k])
                anomalous = (data, "test", subset[y[subset] != k])
                scores = SCORES.get(family, available_scores(model))
                report = detection_report(model, normal, anomalous, scores)
                for score in scores:
                    table.setdefault((family, score), []).append(report[f"{score}_auroc"])
                line = " ".join(f"{s}={report[f'{s}_auroc']:.3f}" for s in scores)
                print(f"{family} class {k}: AUROC {line}", flush=True)
    print(f"data={a.data}")
    print(f"steps={a.steps}")
    print(f"classes={a.classes}")
    print(f"test_examples={len(subset)}")
    for (family, score), values in table.items():
        print(f"{family}_{score}_auroc_per_class={','.join(f'{v:.3f}' for v in values)}")
        print(f"{family}_{score}_mean_auroc={sum(values) / len(values):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
