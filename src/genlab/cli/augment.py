"""`genlab augment`: train a classifier on few real examples per class, then on the same plus
images from a class-conditional generator, and report both test accuracies and the gain."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from genlab.cli.parser import add_device, common
from genlab.errors import UsageError

EPILOG = """examples:
  genlab train ddpm --data digits --out runs/ddpm-c --set model.conditional=true
  genlab augment --generator runs/ddpm-c --classifier cnn --data digits \\
      --labels-per-class 10 --synthetic-per-class 100
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "augment",
        help="does generated data help a classifier? train it without and with it",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    p.add_argument(
        "--generator",
        required=True,
        metavar="RUN_DIR",
        help="a class-conditional run (ddpm, gan or pixelcnn trained with model.conditional)",
    )
    p.add_argument("--classifier", default="cnn", help="the classifier family (default cnn)")
    p.add_argument("--data", help="labelled data (default: the generator's data)")
    p.add_argument(
        "--labels-per-class",
        type=int,
        default=10,
        metavar="N",
        help="real training examples per class (0: all; default 10)",
    )
    p.add_argument(
        "--synthetic-per-class",
        type=int,
        default=100,
        metavar="M",
        help="generated examples added per class (default 100)",
    )
    p.add_argument("--steps", type=int, default=500, help="training steps of each arm")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the classifier's runs, e.g. train.lr=2e-3; repeatable",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of sampling and of both arms")
    p.add_argument("--out", help="keep the two classifier runs here (real/, augmented/)")
    p.add_argument("--json", help="write the report here as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device(p, what="train and sample", default="cpu")


def run(a: argparse.Namespace) -> int:
    from genlab.hardware import resolve_device
    from genlab.io.atomic import write_text_atomic
    from genlab.run import read_run
    from genlab.synthetic import augment_with_generated

    if a.steps < 1:
        raise UsageError(f"--steps must be at least 1; got {a.steps}")
    device = resolve_device(a.device)
    data = a.data or read_run(a.generator)[2].source
    report = augment_with_generated(
        a.generator,
        data,
        classifier=a.classifier,
        labels_per_class=a.labels_per_class,
        synthetic_per_class=a.synthetic_per_class,
        steps=a.steps,
        overrides=a.overrides,
        seed=a.seed,
        device=str(device),
        out=a.out,
        quiet=a.quiet,
    )
    for k, v in report.items():
        print(
            f"{k}: {v:+.4f}"
            if k == "gain"
            else f"{k}: {v:.4f}"
            if isinstance(v, float)
            else f"{k}: {v}"
        )
    if a.json:
        write_text_atomic(Path(a.json), json.dumps(report, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0
