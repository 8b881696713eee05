"""`genlab anomaly RUN`: how well a trained model's likelihood or reconstruction error tells
anomalous data from normal data (AUROC and AUPRC per score, genlab.metrics.anomaly)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from genlab.cli.parser import add_checkpoint_args, add_device, common
from genlab.errors import UsageError

EPILOG = """examples:
  genlab train vae --data digits --out runs/vae-0 --set data.classes=[0]   # one normal class
  genlab anomaly runs/vae-0 --normal-classes 0          # test digits: 0 normal, 1-9 anomalous
  genlab anomaly runs/vae --normal digits --anomalous other-images/ --scores recon
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "anomaly",
        help="AUROC/AUPRC of a run's anomaly scores on normal vs anomalous data",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="a run of a family with a likelihood or "
        "reconstruction (vae, pixelcnn, ddpm, gpt, rnn)",
    )
    p.add_argument("--normal", metavar="DATA", help="normal data (default: the run's data)")
    p.add_argument(
        "--anomalous",
        metavar="DATA",
        help="anomalous data (default: the normal data's examples outside --normal-classes)",
    )
    p.add_argument(
        "--normal-classes",
        metavar="K[,K...]",
        help="class ids that are normal; the other classes of the data are the anomalies",
    )
    p.add_argument(
        "--scores",
        metavar="S[,S...]",
        help="nll, neg_elbo and/or recon (default: every score the run's family has)",
    )
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument("--json", help="write the figures here (default RUN_DIR/anomaly-SPLIT.json)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="seed of the scores' randomness")
    add_checkpoint_args(p)
    add_device(p, what="score")


def _ids(text: str, what: str) -> list[str]:
    words = [w.strip() for w in text.split(",") if w.strip()]
    if not words:
        raise UsageError(f"{what} takes a comma-separated list; got '{text}'")
    return words


def run(a: argparse.Namespace) -> int:
    import torch

    from genlab.hardware import resolve_device
    from genlab.io.atomic import write_text_atomic
    from genlab.metrics.anomaly import SCORES, detection_report
    from genlab.run import load, load_data, read_run

    if a.anomalous is None and a.normal_classes is None:
        raise UsageError("anomaly needs --anomalous DATA or --normal-classes K (see --help)")
    if a.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {a.batch_size}")
    scores = _ids(a.scores, "--scores") if a.scores else None
    for s in scores or []:
        if s not in SCORES:
            raise UsageError(f"unknown score '{s}'; use {', '.join(SCORES)}")
    device = resolve_device(a.device)
    model = load(a.run_dir, which=a.which, ema=not a.no_ema, device=str(device))
    _, cfg, info = read_run(a.run_dir)
    cfg.data.classes, cfg.data.labels_per_class = [], 0  # score every example of the data
    normal = load_data(cfg, a.normal or info.source, run_dir=a.run_dir)
    anomalous = load_data(cfg, a.anomalous, run_dir=a.run_dir) if a.anomalous else normal
    n_idx = torch.arange(len(normal.splits[a.split]))
    a_idx = torch.arange(len(anomalous.splits[a.split]))
    if a.normal_classes is not None:
        try:
            classes = [int(k) for k in _ids(a.normal_classes, "--normal-classes")]
        except ValueError:
            raise UsageError(
                f"--normal-classes takes class ids like 0,3; got '{a.normal_classes}'"
            ) from None
        y = normal.splits[a.split].y
        if y is None or normal.info.task != "classification":
            raise UsageError(
                f"--normal-classes needs labelled data; '{normal.info.source}' has none"
            )
        is_normal = torch.isin(y, torch.tensor(classes, dtype=y.dtype))
        n_idx = torch.nonzero(is_normal).flatten()
        if anomalous is normal:
            a_idx = torch.nonzero(~is_normal).flatten()
    figures = detection_report(
        model,
        (normal, a.split, n_idx),
        (anomalous, a.split, a_idx),
        scores,
        batch_size=a.batch_size,
        seed=a.seed,
    )
    report = {
        "run": str(a.run_dir),
        "checkpoint": model.checkpoint,
        "normal_data": normal.info.source,
        "anomalous_data": anomalous.info.source,
        "normal_classes": a.normal_classes,
        "split": a.split,
        **figures,
    }
    for k, v in report.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    out = Path(a.json) if a.json else Path(a.run_dir) / f"anomaly-{a.split}.json"
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
