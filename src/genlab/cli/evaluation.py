"""`genlab eval RUN`: metrics of a trained run on held-out data, with its family's options.

As for sampling, the run's family is read first and its `EvalOptions` dataclass gives the
evaluation flags (`--iw-samples` for vae, `--bound-timesteps` for ddpm, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genlab.cli.parser import (
    add_checkpoint_args,
    add_device,
    add_flags,
    add_hidden_flags,
    flags_of,
    options_from,
    refuse_extras,
    run_parser,
)
from genlab.errors import UsageError
from genlab.models.base import NoOptions

HELP = "metrics of a trained run on held-out data"

EPILOG = """examples:
  genlab eval runs/demo                        # test split of the data the run was trained on
  genlab eval runs/demo --iw-samples 1000 --json nll.json
  genlab eval runs/demo --data other-digits/ --anomaly-scores --json scores.json
  genlab eval runs/gan --samples 5000 --seed 1     # sample quality next to real-vs-real
"""


def _base(cls: type | None) -> argparse.ArgumentParser:
    if cls is None:
        description = (
            "Metrics of a trained run on held-out data. Options that belong to a family (e.g.\n"
            "--iw-samples for vae): 'genlab eval RUN --help' lists those of RUN's family."
        )
    else:
        description = f"Metrics of a trained '{cls.family}' run ({cls.description})."
    p = run_parser("genlab eval", description, EPILOG)
    p.add_argument("--data", help="data to evaluate on (default: the run's own data)")
    p.add_argument(
        "--split",
        choices=["test", "val", "train"],
        help="split to evaluate (default test; val when the data has no test split)",
    )
    p.add_argument("--json", help="write the metrics here (default RUN_DIR/eval-SPLIT.json)")
    p.add_argument(
        "--anomaly-scores",
        action="store_true",
        help="include per-example anomaly scores (negative ELBO or NLL) in the JSON",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="seed of evaluation randomness")
    p.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="image families: sample-quality figures on N generated images, each next to the "
        "real-vs-real baseline (default 1000 for families without a likelihood, else off)",
    )
    p.add_argument(
        "--feature-steps",
        type=int,
        default=2000,
        metavar="N",
        help="training steps of the frozen cnn whose features judge samples (cached; default 2000)",
    )
    add_checkpoint_args(p)
    add_device(p, what="evaluate")
    return p


def parser_for(cls: type) -> argparse.ArgumentParser:
    """`genlab eval` for a run of family class `cls`."""
    p = _base(cls)
    if cls.EvalOptions is not NoOptions:
        add_flags(p.add_argument_group(f"'{cls.family}' evaluation options"), cls.EvalOptions)
    return p


def elsewhere() -> dict[str, list[str]]:
    """Every family's evaluation flag -> the families that take it."""
    from genlab.registry import FAMILIES

    out: dict[str, list[str]] = {}
    for name, (cls, _) in FAMILIES.items():
        for fl in flags_of(cls.EvalOptions):
            for s in fl.spellings:
                out.setdefault(s, []).append(name)
    return out


def parse(words: list[str]) -> tuple[argparse.Namespace, type] | None:
    """The parsed arguments and the run's family class; None when help was printed."""
    from genlab.cli.runs import run_family
    from genlab.registry import FAMILIES, get_family

    finder = _base(None)  # knows every family's flags, only to find RUN_DIR among the words
    add_hidden_flags(finder, [c.EvalOptions for c, _ in FAMILIES.values()])
    found, _ = finder.parse_known_args(words)
    if found.run_dir is None:
        if found.help:
            finder.print_help()
            return None
        raise UsageError("eval needs RUN_DIR, a run directory written by 'genlab train'")
    cls = get_family(run_family(found.run_dir))[0]
    p = parser_for(cls)
    a, extras = p.parse_known_args(words)
    if a.help:
        p.print_help()
        return None
    refuse_extras(
        extras,
        what=f"'{cls.family}' evaluation",
        own=[fl.flag for fl in flags_of(cls.EvalOptions)],
        known=[s for action in p._actions for s in action.option_strings],
        elsewhere=elsewhere(),
    )
    return a, cls


def run(words: list[str]) -> int:
    import torch

    from genlab.hardware import resolve_device
    from genlab.io.atomic import write_text_atomic
    from genlab.metrics.evaluate import evaluate
    from genlab.metrics.quality import check_quality_settings
    from genlab.models.base import EvidenceBound, Likelihood
    from genlab.run import load, load_data, read_run

    parsed = parse(words)
    if parsed is None:
        return 0
    a, cls = parsed
    options = options_from(a, cls.EvalOptions)
    if a.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {a.batch_size}")
    if a.samples:  # 0: no sample-quality figures
        check_quality_settings(a.samples, a.feature_steps)
    device = resolve_device(a.device)
    model = load(a.run_dir, which=a.which, ema=not a.no_ema, device=str(device))
    _, cfg, info = read_run(a.run_dir)
    data = load_data(cfg, a.data or info.source, run_dir=a.run_dir)
    if a.split is None:  # e.g. a text corpus split 90/10 into train and validation only
        a.split = "test" if len(data.splits["test"]) or not len(data.splits["val"]) else "val"
    samples = a.samples
    if samples is None:  # a family with no likelihood is judged by its samples
        generative_image = model.generates() and data.info.kind == "image"
        has_likelihood = isinstance(model, Likelihood | EvidenceBound)
        samples = 1000 if generative_image and not has_likelihood else 0
    frozen = None
    if samples:  # the frozen judge of sample quality: trained once, then cached
        from genlab.judges import judge

        frozen = judge(data.info.source, steps=a.feature_steps, progress=sys.stderr.isatty())
    metrics = evaluate(
        model,
        data,
        a.split,
        batch_size=a.batch_size,
        seed=a.seed,
        options=options,
        anomaly_scores=a.anomaly_scores,
        progress=sys.stderr.isatty(),
        samples=samples,
        feature_steps=a.feature_steps,
        judge=frozen,
    )
    metrics = {
        "run": str(a.run_dir),
        "checkpoint": model.checkpoint,
        "data": data.info.source,
        **metrics,
    }

    def show(v: object) -> str:
        return f"{v:.6g}" if isinstance(v, float) else f"{v}"

    for k, v in metrics.items():
        if k.endswith("_real") and k[: -len("_real")] in metrics:
            continue  # printed beside its figure
        if k == "anomaly_scores":
            s = torch.tensor(v)
            print(f"{k}: {len(v)} scores (median {s.median():.2f}, max {s.max():.2f}) in the JSON")
        elif f"{k}_real" in metrics:  # a sample-quality figure and its real-vs-real baseline
            print(f"{k}: {show(v)}   (real {a.split} vs train: {show(metrics[f'{k}_real'])})")
        else:
            print(f"{k}: {show(v)}")
    out = Path(a.json) if a.json else Path(a.run_dir) / f"eval-{a.split}.json"
    write_text_atomic(out, json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
