"""Benchmark: does generated data help a classifier trained on few labels?

    python bench/augment_digits.py                                  # built-in digits, one core
    python bench/augment_digits.py --families gan,pixelcnn --generator-steps 2000 \
        --set pixelcnn:model.channels=16 --set gan:model.monitor_samples=0

Trains each class-conditional generator (`model.conditional=true`) on the data, then runs
`genlab augment`'s workflow (genlab.synthetic.augment_with_generated) for each N labels per
class: a `cnn` on N real examples per class, then on the same plus M generated per class, same
steps and seed, both scored on the real test split. Prints key=value lines last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

import genlab
from genlab.synthetic import augment_with_generated


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--families", default="gan,pixelcnn,ddpm")
    p.add_argument("--generator-steps", type=int, default=1500)
    p.add_argument("--steps", type=int, default=300, help="classifier steps of each arm")
    p.add_argument("--labels", default="10,100", help="real labels per class")
    p.add_argument("--synthetic", type=int, default=100, help="generated examples per class")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="FAMILY:key=value, a setting of one generator",
    )
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-augment-") as tmp:
        for family in [f for f in a.families.split(",") if f]:
            mine = [s.split(":", 1)[1] for s in a.overrides if s.startswith(f"{family}:")]
            gen = genlab.train(
                family,
                a.data,
                Path(tmp) / family,
                overrides=["model.conditional=true", *mine],
                steps=a.generator_steps,
                quiet=True,
            )
            for n in [int(v) for v in a.labels.split(",")]:
                r = augment_with_generated(
                    gen,
                    a.data,
                    labels_per_class=n,
                    synthetic_per_class=a.synthetic,
                    steps=a.steps,
                    overrides=["train.eval_every=50"],
                )
                rows.append((family, n, r))
                print(
                    f"{family} N={n} M={a.synthetic}: real {r['real_accuracy']:.4f} "
                    f"augmented {r['augmented_accuracy']:.4f} gain {r['gain']:+.4f}",
                    flush=True,
                )
    print(f"data={a.data}")
    print(f"generator_steps={a.generator_steps}")
    print(f"steps={a.steps}")
    print(f"synthetic_per_class={a.synthetic}")
    for family, n, r in rows:
        print(f"{family}_n{n}_real_acc={r['real_accuracy']:.4f}")
        print(f"{family}_n{n}_augmented_acc={r['augmented_accuracy']:.4f}")
        print(f"{family}_n{n}_gain={r['gain']:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
