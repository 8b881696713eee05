"""`genlab eval RUN`: metrics of a trained run on held-out data, with its family's options.

As for sampling, the run's family is read first and its `EvalOptions` dataclass gives the
evaluation flags (`--iw-samples` for vae, `--bound-timesteps` for ddpm, ...).
"""

from __future__ import annotations

import argparse
import csv
import io
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

EPILOG = """examples:
  genlab eval runs/demo                        # test split of the data the run was trained on
  genlab eval runs/demo --iw-samples 1000 --json nll.json
  genlab eval runs/demo --data other-digits/ --split all --anomaly-scores   # + a sorted CSV
  genlab eval runs/ddpm --max-examples 500     # a bounded evaluation
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
        choices=["test", "val", "train", "all"],
        help="split to evaluate (default test; val when the data has no test split); all: every "
        "example of the data (train, val and test)",
    )
    p.add_argument(
        "--max-examples",
        type=int,
        metavar="N",
        help="score only the first N examples of the split (a quick, bounded evaluation)",
    )
    p.add_argument(
        "--json",
        help="write the metrics here (default RUN_DIR/eval-SPLIT.json; on other --data, "
        "RUN_DIR/eval-NAME-HASH-SPLIT.json)",
    )
    p.add_argument(
        "--anomaly-scores",
        action="store_true",
        help="score every example (negative ELBO or NLL, higher = more unusual): a CSV of "
        "example (file name, CSV line or SPLIT:POSITION) and score, most unusual first, plus "
        "the scores in the JSON",
    )
    p.add_argument(
        "--csv",
        metavar="PATH",
        help="where --anomaly-scores writes its CSV (default: the JSON's name, "
        "-anomaly-scores.csv)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="seed of evaluation randomness")
    p.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="sample-quality figures on N generated samples, each next to the real-vs-real "
        "baseline: images through the frozen cnn judge (default 1000 for image families "
        "without a likelihood, else off); labelled audio through the frozen melcnn judge "
        "(class-conditional runs: N spread over the classes; judge accuracy and FD)",
    )
    p.add_argument(
        "--feature-steps",
        type=int,
        metavar="N",
        help="training steps of the frozen judge whose features judge samples (cached; default "
        "2000 for the image judge, 1500 for the audio judge)",
    )
    add_checkpoint_args(p)
    add_device(p, what="evaluate")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
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
    from genlab.metrics.evaluate import evaluate, example_ids
    from genlab.metrics.quality import check_quality_settings
    from genlab.models.base import EvidenceBound, Likelihood
    from genlab.run import eval_file_name, load, load_data, read_run

    parsed = parse(words)
    if parsed is None:
        return 0
    a, cls = parsed
    options = options_from(a, cls.EvalOptions)
    if a.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {a.batch_size}")
    if a.max_examples is not None and a.max_examples < 1:
        raise UsageError(f"--max-examples must be at least 1; got {a.max_examples}")
    if a.csv and not a.anomaly_scores:
        raise UsageError("--csv is where --anomaly-scores writes its CSV; add --anomaly-scores")
    progress = sys.stderr.isatty() and not a.quiet
    if a.samples:  # 0: no sample-quality figures
        check_quality_settings(a.samples, 1 if a.feature_steps is None else a.feature_steps)
    device = resolve_device(a.device)
    model = load(a.run_dir, which=a.which, ema=not a.no_ema, device=str(device))
    for note in model.notes:  # e.g. EMA weights that have not caught up
        print(f"genlab: warning: {note}", file=sys.stderr)
    _, cfg, info = read_run(a.run_dir)
    from genlab.models.tables import is_table_model

    if is_table_model(model):  # synthetic tables: the quality, utility and privacy report
        return _table_report(a, model, cfg, options)
    data = load_data(cfg, a.data or info.source, run_dir=a.run_dir)
    if a.split is None:  # e.g. a text corpus split 90/10 into train and validation only
        a.split = "test" if len(data.splits["test"]) or not len(data.splits["val"]) else "val"
    samples = a.samples
    if samples is None:  # a family with no likelihood is judged by its samples
        generative_image = model.generates() and data.info.kind == "image"
        has_likelihood = isinstance(model, Likelihood | EvidenceBound)
        samples = 1000 if generative_image and not has_likelihood else 0
    frozen = None
    feature_steps = a.feature_steps
    if samples and data.info.kind == "audio":  # the frozen melcnn judge of labelled audio
        from genlab.judges import audio_judge
        from genlab.metrics.quality import is_conditional

        if not model.generates() or not is_conditional(model):
            raise UsageError(
                f"audio sample quality judges class-conditional samples; {a.run_dir} is not a "
                "class-conditional generator (train it with --set model.conditional=true)"
            )
        feature_steps = feature_steps or 1500
        frozen = audio_judge(data, steps=feature_steps, progress=progress)
    elif samples:  # the frozen cnn judge of images: trained once, then cached
        from genlab.judges import judge

        feature_steps = feature_steps or 2000
        frozen = judge(data.info.source, steps=feature_steps, progress=progress)
    metrics = evaluate(
        model,
        data,
        a.split,
        batch_size=a.batch_size,
        seed=a.seed,
        options=options,
        anomaly_scores=a.anomaly_scores,
        progress=progress,
        samples=samples,
        feature_steps=feature_steps or 2000,
        judge=frozen,
        max_examples=a.max_examples,
    )
    metrics = {
        "run": str(a.run_dir),
        "checkpoint": model.checkpoint,
        "data": data.info.source,
        "data_fingerprint": data.info.fingerprint,
        **metrics,
    }

    def show(v: object) -> str:
        return f"{v:.6g}" if isinstance(v, float) else f"{v}"

    for k, v in metrics.items():
        if k in ("data_fingerprint", "warnings"):
            continue  # in the JSON (and the file name); warnings follow the figures
        if k.endswith("_real") and k[: -len("_real")] in metrics:
            continue  # printed beside its figure
        if k == "anomaly_scores":
            s = torch.tensor(v)
            print(f"{k}: {len(v)} scores (median {s.median():.2f}, max {s.max():.2f}) in the JSON")
        elif f"{k}_real" in metrics:  # a sample-quality figure and its real-vs-real baseline
            print(f"{k}: {show(v)}   (real {a.split} vs train: {show(metrics[f'{k}_real'])})")
        else:
            print(f"{k}: {show(v)}")
    for warning in metrics.get("warnings", []):  # e.g. precision fooled by collapsed samples
        print(f"genlab: warning: {warning}", file=sys.stderr)
    out = Path(a.json) if a.json else Path(a.run_dir) / eval_file_name(info, data.info, a.split)
    write_text_atomic(out, json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {out}")
    if "anomaly_scores" in metrics:
        table = Path(a.csv) if a.csv else out.with_name(f"{out.stem}-anomaly-scores.csv")
        ids = example_ids(data, a.split, a.max_examples)
        write_text_atomic(table, anomaly_csv(ids, metrics["anomaly_scores"]))
        print(f"wrote {table} (most unusual first)")
    elif a.anomaly_scores:
        print(f"note: '{cls.family}' gives no per-example likelihood: no anomaly scores")
    return 0


def anomaly_csv(ids: list[str], scores: list[float]) -> str:
    """CSV text of example,score rows, the highest score (most unusual) first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["example", "score"])
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):  # stable among equal scores
        w.writerow([ids[i], scores[i]])
    return buf.getvalue()


def _table_report(a: argparse.Namespace, model, cfg, options) -> int:
    """`genlab eval` of a table family: the report of genlab.metrics.tabular, written as JSON,
    Markdown and PNG (RUN_DIR/report-DATA.*, or beside --json), each figure beside real."""
    from genlab.metrics.tabular import LABELS, evaluate_table, write_report

    out, train, synth = evaluate_table(
        model, cfg.data, a.data, n=a.samples, seed=a.seed, target=options.target
    )
    out = {"run": str(a.run_dir), "checkpoint": model.checkpoint, **out}
    for key, label in LABELS.items():
        if key in out:
            real = out.get(f"{key}_real")
            shown = "n/a" if out[key] is None else f"{out[key]:.4f}"
            print(f"{label}: {shown}   (real: {'n/a' if real is None else f'{real:.4f}'})")
    name = Path(a.data).name if a.data else "test"
    path = Path(a.json) if a.json else Path(a.run_dir) / f"report-{name}.json"
    files = write_report(out, model.codec, train, synth, path, f"genlab report: {a.run_dir}")
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0
