"""`genlab predict RUN --data FILE_OR_FOLDER`: a trained classifier's (or regressor's) answer for
each input, as a CSV with one row per input.

The run's data kind reads the inputs (`read_inputs`: images, IDX files, CSV rows), so the verb
takes every format the classifiers train on.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

from genlab.cli.parser import add_checkpoint_args, add_device, common
from genlab.errors import UsageError

EPILOG = """examples:
  genlab predict runs/lenet --data my-digits/ --out predictions.csv
  genlab predict runs/lenet --data path/to/mnist/t10k-images-idx3-ubyte.gz --out test.csv
  genlab predict runs/mlp --data houses.csv --out prices.csv
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="a classifier's (mlp, cnn) prediction for each input, as CSV",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory of a classifier")
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE_OR_FOLDER",
        help="inputs: an image, a folder of images (class sub-folders allowed), an IDX images "
        "file or folder, or a CSV file with the run's feature columns",
    )
    p.add_argument("--out", help="CSV to write (default RUN_DIR/predictions.csv)")
    p.add_argument("--batch-size", type=int, default=256, help="inputs per forward pass")
    add_checkpoint_args(p)
    add_device(p, what="predict")


def run(a: argparse.Namespace) -> int:
    from genlab.cli.runs import run_family
    from genlab.data.kinds import kind_of
    from genlab.hardware import resolve_device
    from genlab.io.atomic import write_text_atomic
    from genlab.registry import FAMILIES, get_family
    from genlab.run import load

    cls = get_family(run_family(a.run_dir))[0]
    if not cls.discriminative:
        takes = ", ".join(name for name, (c, _) in FAMILIES.items() if c.discriminative)
        raise UsageError(
            f"'{cls.family}' is generative: it has no prediction to make (predict takes "
            f"{takes} runs); use genlab sample or genlab eval"
        )
    if a.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {a.batch_size}")
    data = Path(a.data)
    if not data.exists():
        raise UsageError(f"no file or folder at {data}; give the inputs to predict")
    out = Path(a.out) if a.out else Path(a.run_dir) / "predictions.csv"
    if out.suffix.lower() != ".csv":
        raise UsageError(f"predict writes CSV; --out {out.name} has another suffix")
    device = resolve_device(a.device)
    model = load(a.run_dir, which=a.which, ema=not a.no_ema, device=str(device))
    inputs = kind_of(model.info).read_inputs(data, model.info)
    header, rows, correct = predictions(model, inputs, a.batch_size, device)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(out, text.getvalue())
    note = ""
    if correct is not None:
        note = f"; {correct / len(rows):.4f} of them match the labels the inputs carry"
    print(f"wrote {out} ({len(rows)} predictions from {model.checkpoint}{note})")
    return 0


def predictions(model: Any, inputs: Any, batch_size: int, device: Any) -> tuple[list, list, Any]:
    """The CSV header and rows of a model's predictions for `inputs`, and how many predicted
    classes equal the inputs' labels (None without labels or for a regression).

    Classification: input, [label], predicted, then the probability of each class (p_NAME).
    Regression: input, [label], predicted (in the target's own units)."""
    import torch

    info = model.info
    outs = []
    with torch.no_grad():
        for i in range(0, len(inputs.x), batch_size):
            outs.append(model.predict(inputs.x[i : i + batch_size].to(device)).float().cpu())
    out = torch.cat(outs) if outs else torch.empty(0)
    first = ["input", *(["label"] if inputs.labels is not None else [])]
    labels = inputs.labels if inputs.labels is not None else [None] * len(inputs.names)

    def lead(k: int) -> list[Any]:
        return [inputs.names[k], *([labels[k]] if inputs.labels is not None else [])]

    if info.task != "classification":  # a regression: the standardized output, un-standardized
        rec = info.record
        values = out * rec.target_std + rec.target_mean
        rows = [[*lead(k), f"{float(v):.6g}"] for k, v in enumerate(values)]
        return [*first, "predicted"], rows, None
    names = info.class_names or [str(k) for k in range(out.shape[1])]
    probs = out.softmax(-1)
    picked = probs.argmax(-1).tolist()
    rows = [
        [*lead(k), names[c], *(f"{p:.6f}" for p in probs[k].tolist())] for k, c in enumerate(picked)
    ]
    correct = None
    if inputs.labels is not None:
        correct = sum(names[c] == _class_key(str(y)) for c, y in zip(picked, labels))
    return [*first, "predicted", *(f"p_{n}" for n in names)], rows, correct


def _class_key(label: str) -> str:
    """A label as the class names spell it ('3.0' -> '3', ' <=50K.' -> '<=50K')."""
    key = label.strip().rstrip(".") if label.strip().endswith(".") else label.strip()
    try:
        number = float(key)
    except ValueError:
        return key
    return str(int(number)) if number.is_integer() else key
