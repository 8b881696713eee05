"""`genlab bench`: train, sample and evaluate several families side by side on the same data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from genlab.cli.parser import add_device, common

EPILOG = """examples:
  genlab bench --data mnist-sample --families vae,gan,pixelcnn --budget-minutes 5
      # writes runs/bench-mnist-sample/comparison.md
  genlab bench --data path/to/mnist --preset mnist --budget-minutes 30 --out runs/bench \\
      --set gan:model.loss=hinge --set train.batch_size=64
  genlab bench --data mnist-sample --families gan,style=gan --set style:model.generator=style \
      --budget-minutes 5 --cpu-budget     # both GAN generators, 5 CPU-minutes each
"""


def add_parser(sub: Any) -> None:
    b = sub.add_parser(
        "bench",
        help="train, sample and evaluate several families side by side on the same data",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    b.add_argument(
        "--data", required=True, help="image data or a CSV table: a built-in name or a path"
    )
    b.add_argument(
        "--out",
        help="folder for runs/, comparison.md/.json, PNGs (default runs/bench-DATA, DATA being "
        "the built-in name or the data folder's name)",
    )
    b.add_argument(
        "--families",
        help="comma-separated generative families (default vae,gan,pixelcnn; for a CSV table "
        "copula,tvae,ctgan); LABEL=FAMILY runs a family again under its own label, which "
        "--set LABEL:KEY=VALUE then sets apart",
    )
    b.add_argument(
        "--budget-minutes",
        type=float,
        default=10.0,
        metavar="M",
        help="training budget of each family (default 10), wall clock unless --cpu-budget",
    )
    b.add_argument(
        "--cpu-budget",
        action="store_true",
        help="count the budget in this process's CPU time, so other work on the machine "
        "stretches the wall time but not the training (images and audio)",
    )
    b.add_argument("--samples", type=int, default=1000, help="generated images scored per family")
    b.add_argument("--seed", type=int, default=0, help="training and sampling seed (default 0)")
    b.add_argument("--preset", help="use each family's preset of this name where it has one")
    b.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[FAMILY:]KEY=VALUE",
        help="override a setting for every family, or for one with a FAMILY: (or LABEL:) prefix",
    )
    b.add_argument(
        "--feature-steps", type=int, default=2000, metavar="N", help="as for genlab eval"
    )
    b.add_argument(
        "--calibration-steps",
        type=int,
        default=10,
        metavar="K",
        help="timed steps that size each family's run to the budget (default 10)",
    )
    b.add_argument(
        "--nll-examples",
        type=int,
        default=0,
        metavar="N",
        help="likelihoods on the first N test images only (default 0: all)",
    )
    # default None: each run's train.device (auto); given, it is the train.device setting
    add_device(b, what="train the families", default=None)
    b.add_argument("--quiet", action="store_true", help="no progress bars")


def run(a: argparse.Namespace) -> int:
    from genlab.bench import DEFAULT_FAMILIES, TABLE_FAMILIES, bench, parse_families
    from genlab.data.loader import kind_name
    from genlab.hardware import resolve_device
    from genlab.io.runs import data_name

    if a.families is None:
        a.families = TABLE_FAMILIES if kind_name(a.data) == "tabular" else DEFAULT_FAMILIES

    if not a.out:
        a.out = str(Path("runs") / f"bench-{data_name(a.data.rstrip('/')) or 'data'}")
    overrides = list(a.overrides)
    if a.device is not None:
        resolve_device(a.device)
        overrides.append(f"train.device={a.device}")
    comparison = bench(
        a.data,
        a.out,
        families=parse_families(a.families),
        budget_minutes=a.budget_minutes,
        samples=a.samples,
        seed=a.seed,
        preset=a.preset,
        overrides=overrides,
        feature_steps=a.feature_steps,
        calibration_steps=a.calibration_steps,
        nll_examples=a.nll_examples,
        quiet=a.quiet or not sys.stderr.isatty(),
        cpu_budget=a.cpu_budget,
    )
    print((Path(a.out) / "comparison.md").read_text())
    names = ", ".join(f"samples-{f}.png" for f in comparison["families"])
    if kind_name(a.data) == "tabular":
        names = "runs/"
    print(f"wrote {a.out}/comparison.md, comparison.json, {names}")
    return 0
