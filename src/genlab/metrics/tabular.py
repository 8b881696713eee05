"""The report on a synthetic table: quality, utility and privacy, each figure next to the same
figure for held-out real rows (real-vs-real), which is what a perfect synthesizer would score.

Three tables of rows: `train` (what the model learned from), `holdout` (real rows it never saw)
and `synth` (its samples). Each figure compares synth with train, and beside it holdout with
train:

- column shapes: per column 1 - KS statistic (numeric, integer, datetime columns; present
  values) or 1 - total-variation distance of the category shares (categorical, bool); mean.
- column pair trends: per pair of numeric columns 1 - |corr_a - corr_b| / 2 (Pearson), per other
  pair 1 - TV distance of their joint shares (numbers cut at the train rows' deciles); mean.
- ML utility (TSTR): a HistGradientBoostingClassifier trained on the rows (synth; beside it the
  train rows), tested on the holdout rows: accuracy, F1 (binary: of the rarer class; else
  macro) and ROC AUC (binary; else one-vs-rest macro).
- privacy: the distance from each row to its closest train row (DCR; numbers scaled to the
  train range, categories one-hot), median for synth and for holdout, their ratio (near 1 or
  above: synthetic rows are no closer to the training rows than unseen real rows are), and the
  share of synthetic rows that copy a train row exactly.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from genlab.data.tabular_codec import TableCodec
from genlab.errors import DataError
from genlab.io.atomic import write_text_atomic

NUMERIC = ("numeric", "integer", "datetime")
BINS = 10


class Frame:
    """Typed columns of a table: float arrays (NaN when missing) or category-text arrays."""

    def __init__(self, codec: TableCodec, texts: list[list[str]], where: str) -> None:
        self.codec = codec
        self.texts = texts
        parsed = codec.parse(texts, where, strict=False)  # unseen categories stay as text
        self.columns: list[np.ndarray] = []
        for col, values in zip(codec.columns, parsed):
            if col["type"] in NUMERIC:
                self.columns.append(np.asarray([np.nan if v is None else v for v in values]))
            else:
                self.columns.append(np.asarray(values, dtype=object))

    def __len__(self) -> int:
        return len(self.texts)


def decoded_texts(codec: TableCodec, rows: list[list[Any]]) -> list[list[str]]:
    """Decoded rows (the codec's values) as CSV cell texts."""
    return [[codec.text(j, v) for j, v in enumerate(row)] for row in rows]


# column shapes and pair trends --------------------------------------------------------------
def _shares(values: np.ndarray, categories: list[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(categories)}
    counts = np.bincount(
        [lookup.get(v, len(categories)) for v in values], minlength=len(lookup) + 1
    )
    return counts / max(counts.sum(), 1)


def column_shape(codec: TableCodec, j: int, a: Frame, b: Frame) -> float:
    col = codec.columns[j]
    x, y = a.columns[j], b.columns[j]
    if col["type"] in NUMERIC:
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        if not len(x) or not len(y):
            return float(len(x) == len(y))
        from scipy.stats import ks_2samp

        return 1.0 - float(ks_2samp(x, y).statistic)
    cats = col["categories"]
    return 1.0 - 0.5 * float(np.abs(_shares(x, cats) - _shares(y, cats)).sum())


def _codes(codec: TableCodec, j: int, values: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
    """Discrete codes of a column for contingency tables (numbers: decile bins, NaN: its own)."""
    if edges is None:
        lookup = {c: i for i, c in enumerate(codec.columns[j]["categories"])}
        return np.asarray([lookup.get(v, len(lookup)) for v in values])
    out = np.searchsorted(edges, values, side="right")
    return np.where(np.isnan(values), len(edges) + 1, out)


def pair_trends(codec: TableCodec, ref: Frame, a: Frame, b: Frame) -> dict[str, float]:
    """Per pair "col1|col2": the similarity of a's and b's trend (see the module docstring)."""
    kinds = [c["type"] in NUMERIC for c in codec.columns]
    edges: list[np.ndarray | None] = []
    for j, numeric in enumerate(kinds):
        if numeric:
            present = ref.columns[j][~np.isnan(ref.columns[j])]
            edges.append(np.unique(np.quantile(present, np.linspace(0.1, 0.9, BINS - 1))))
        else:
            edges.append(None)
    codes_a = [_codes(codec, j, a.columns[j], edges[j]) for j in range(len(kinds))]
    codes_b = [_codes(codec, j, b.columns[j], edges[j]) for j in range(len(kinds))]
    out = {}
    names = codec.names
    for i in range(len(kinds)):
        for j in range(i + 1, len(kinds)):
            key = f"{names[i]}|{names[j]}"
            if kinds[i] and kinds[j]:
                out[key] = 1.0 - abs(_corr(a, i, j) - _corr(b, i, j)) / 2
                continue
            width = int(max(codes_a[j].max(initial=0), codes_b[j].max(initial=0))) + 1
            ja = codes_a[i] * width + codes_a[j]
            jb = codes_b[i] * width + codes_b[j]
            size = int(max(ja.max(initial=0), jb.max(initial=0))) + 1
            pa = np.bincount(ja, minlength=size) / max(len(ja), 1)
            pb = np.bincount(jb, minlength=size) / max(len(jb), 1)
            out[key] = 1.0 - 0.5 * float(np.abs(pa - pb).sum())
    return out


def _corr(f: Frame, i: int, j: int) -> float:
    x, y = f.columns[i], f.columns[j]
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 2 or x[ok].std() == 0 or y[ok].std() == 0:
        return 0.0
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def correlations(codec: TableCodec, f: Frame) -> tuple[list[str], np.ndarray]:
    """The numeric columns' names and their Pearson correlation matrix."""
    idx = [j for j, c in enumerate(codec.columns) if c["type"] in NUMERIC]
    m = np.eye(len(idx))
    for a, i in enumerate(idx):
        for b, j in enumerate(idx[a + 1 :], start=a + 1):
            m[a, b] = m[b, a] = _corr(f, i, j)
    return [codec.names[i] for i in idx], m


# utility ------------------------------------------------------------------------------------
def _features(codec: TableCodec, f: Frame, target: int) -> tuple[np.ndarray, np.ndarray]:
    """A float matrix for gradient boosting (categories as their index, NaN when missing) and
    the target's category indices."""
    cols = []
    for j, col in enumerate(codec.columns):
        if j == target:
            continue
        if col["type"] in NUMERIC:
            cols.append(f.columns[j].astype(np.float64))
        else:
            lookup = {c: i for i, c in enumerate(col["categories"])}  # unseen: as missing
            cols.append(np.asarray([lookup.get(v, np.nan) for v in f.columns[j]], dtype=float))
    lookup = {c: i for i, c in enumerate(codec.columns[target]["categories"])}
    y = np.asarray([lookup.get(v, -1) for v in f.columns[target]])
    return np.stack(cols, axis=1), y


def utility(
    codec: TableCodec, train: Frame, test: Frame, target: int, positive: int, seed: int
) -> dict[str, float | None]:
    """accuracy, f1 and auc of a HistGradientBoostingClassifier trained on `train`, tested on
    `test`; None for what a one-class training set cannot give."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import f1_score, roc_auc_score

    cats = [
        c["type"] not in NUMERIC for j, c in enumerate(codec.columns) if j != target
    ]  # the categorical features, which the classifier splits by category
    x, y = _features(codec, train, target)
    xt, yt = _features(codec, test, target)
    xt, yt = xt[yt >= 0], yt[yt >= 0]  # test rows of a class never seen in training: left out
    classes = np.unique(y)
    if len(classes) < 2:
        return {"accuracy": float(np.mean(yt == classes[0])), "f1": 0.0, "auc": None}
    model = HistGradientBoostingClassifier(
        categorical_features=np.asarray(cats) if any(cats) else None, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    pred = model.predict(xt)
    proba = model.predict_proba(xt)
    k = len(codec.columns[target]["categories"])
    full = np.zeros((len(xt), k))
    full[:, model.classes_] = proba
    out: dict[str, float | None] = {"accuracy": float(np.mean(pred == yt))}
    present = np.unique(yt)
    if k == 2 or len(present) == 2:
        out["f1"] = float(f1_score(yt == positive, pred == positive))
        auc = roc_auc_score(yt == positive, full[:, positive]) if len(present) == 2 else None
        out["auc"] = None if auc is None else float(auc)
    else:
        out["f1"] = float(f1_score(yt, pred, average="macro"))
        p = full[:, present] / np.clip(full[:, present].sum(1, keepdims=True), 1e-12, None)
        out["auc"] = float(roc_auc_score(yt, p, multi_class="ovr", labels=present))
    return out


# privacy ------------------------------------------------------------------------------------
def _points(codec: TableCodec, f: Frame, ref: Frame) -> np.ndarray:
    """Rows as points: numbers scaled to ref's range (missing: -1), categories one-hot."""
    parts = []
    for j, col in enumerate(codec.columns):
        x = f.columns[j]
        if col["type"] in NUMERIC:
            r = ref.columns[j][~np.isnan(ref.columns[j])]
            lo, hi = (float(r.min()), float(r.max())) if len(r) else (0.0, 1.0)
            scaled = (x - lo) / (hi - lo if hi > lo else 1.0)
            parts.append(np.where(np.isnan(x), -1.0, scaled)[:, None])
        else:
            lookup = {c: i for i, c in enumerate(col["categories"])}
            onehot = np.zeros((len(x), len(lookup) + 1))  # the last: an unseen category
            onehot[np.arange(len(x)), [lookup.get(v, len(lookup)) for v in x]] = 1.0
            parts.append(onehot)
    return np.concatenate(parts, axis=1)


def closest(points: np.ndarray, ref: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Euclidean distance from each point to its nearest row of ref."""
    import torch

    r = torch.from_numpy(ref).float()
    out = []
    for start in range(0, len(points), chunk):
        p = torch.from_numpy(points[start : start + chunk]).float()
        out.append(torch.cdist(p, r).min(dim=1).values)
    return torch.cat(out).double().numpy()


def privacy(codec: TableCodec, train: Frame, synth: Frame, holdout: Frame) -> dict[str, float]:
    ref = _points(codec, train, train)
    d_synth = closest(_points(codec, synth, train), ref)
    d_hold = closest(_points(codec, holdout, train), ref)
    seen = {tuple(row) for row in train.texts}
    copies = sum(tuple(row) in seen for row in synth.texts)
    med_s, med_h = float(np.median(d_synth)), float(np.median(d_hold))
    return {
        "dcr_median": med_s,
        "dcr_median_real": med_h,
        "dcr_ratio": med_s / med_h if med_h > 0 else math.inf,
        "exact_copies": copies / max(len(synth), 1),
        "exact_copies_real": sum(tuple(r) in seen for r in holdout.texts) / max(len(holdout), 1),
    }


# the report ---------------------------------------------------------------------------------
def choose_target(codec: TableCodec, target: str) -> int | None:
    """The column TSTR predicts: `target`, else None (no utility figures)."""
    if not target:
        return None
    if target not in codec.names:
        raise DataError(f"no column '{target}'; columns are: {', '.join(codec.names)}")
    j = codec.names.index(target)
    if codec.columns[j]["type"] not in ("categorical", "bool"):
        raise DataError(
            f"the target '{target}' is a {codec.columns[j]['type']} column; TSTR classifies a "
            "categorical or bool column: give --target another column"
        )
    return j


def report(
    codec: TableCodec,
    train: list[list[str]],
    holdout: list[list[str]],
    synth: list[list[str]],
    *,
    target: str = "",
    seed: int = 0,
) -> dict[str, Any]:
    """Every figure of the report, each "X" beside "X_real" (holdout vs train)."""
    if not holdout:
        raise DataError("no held-out real rows to compare with; give --data a real CSV file")
    ft = Frame(codec, train, "the training rows")
    fh = Frame(codec, holdout, "the real rows")
    fs = Frame(codec, synth, "the synthetic rows")
    out: dict[str, Any] = {"rows_train": len(ft), "rows_real": len(fh), "rows_synthetic": len(fs)}
    shapes = {n: column_shape(codec, j, fs, ft) for j, n in enumerate(codec.names)}
    shapes_real = {n: column_shape(codec, j, fh, ft) for j, n in enumerate(codec.names)}
    out["column_shapes"] = float(np.mean(list(shapes.values())))
    out["column_shapes_real"] = float(np.mean(list(shapes_real.values())))
    trends = pair_trends(codec, ft, fs, ft)
    trends_real = pair_trends(codec, ft, fh, ft)
    if trends:
        out["pair_trends"] = float(np.mean(list(trends.values())))
        out["pair_trends_real"] = float(np.mean(list(trends_real.values())))
    j = choose_target(codec, target)
    if j is not None:
        counts = codec.columns[j]["counts"]
        positive = int(np.argmin(counts)) if len(counts) == 2 else 0
        out["target"] = codec.names[j]
        if len(counts) == 2:
            out["positive_class"] = codec.columns[j]["categories"][positive]
        synth_fit = utility(codec, fs, fh, j, positive, seed)
        real_fit = utility(codec, ft, fh, j, positive, seed)
        for k in ("accuracy", "f1", "auc"):
            out[f"tstr_{k}"] = synth_fit[k]
            out[f"tstr_{k}_real"] = real_fit[k]
    out |= privacy(codec, ft, fs, fh)
    out["per_column_shapes"] = shapes
    out["per_column_shapes_real"] = shapes_real
    return out


LABELS = {
    "column_shapes": "column shapes (1 - KS / 1 - TV)",
    "pair_trends": "column pair trends (correlation / contingency)",
    "tstr_accuracy": "TSTR accuracy",
    "tstr_f1": "TSTR F1",
    "tstr_auc": "TSTR AUC",
    "dcr_median": "distance to closest training row (median)",
    "exact_copies": "exact copies of training rows (share)",
}


def _show(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def markdown(out: dict[str, Any], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"{out['rows_synthetic']} synthetic rows, {out['rows_train']} "
        f"training rows, {out['rows_real']} held-out real rows.",
        "",
    ]
    if "target" in out:
        lines += [
            f"TSTR target: `{out['target']}`"
            + (f" (positive class `{out['positive_class']}`)" if "positive_class" in out else ""),
            "",
        ]
    lines += ["| figure | synthetic | real (held-out) |", "|---|---|---|"]
    for key, label in LABELS.items():
        if key in out:
            lines.append(f"| {label} | {_show(out[key])} | {_show(out.get(key + '_real'))} |")
    if "dcr_ratio" in out:
        lines += ["", f"DCR ratio (synthetic / held-out real): {_show(out['dcr_ratio'])}"]
    lines += ["", "| column | shape | real |", "|---|---|---|"]
    for name, v in out["per_column_shapes"].items():
        lines.append(f"| {name} | {v:.4f} | {out['per_column_shapes_real'][name]:.4f} |")
    return "\n".join(lines) + "\n"


def figure(codec: TableCodec, train: list[list[str]], synth: list[list[str]], path: Path) -> bool:
    """A PNG of each column's marginal (train vs synthetic) and of the difference of the numeric
    columns' correlations; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ft, fs = Frame(codec, train, "train"), Frame(codec, synth, "synthetic")
    n = len(codec.columns)
    cols = 4
    rows = math.ceil(n / cols) + 1
    fig = plt.figure(figsize=(4 * cols, 3 * rows))
    for j, col in enumerate(codec.columns):
        ax = fig.add_subplot(rows, cols, j + 1)
        if col["type"] in NUMERIC:
            a, b = ft.columns[j], fs.columns[j]
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            bins = np.histogram_bin_edges(a, bins=30)
            ax.hist(a, bins=bins, alpha=0.5, density=True, label="real")
            ax.hist(b, bins=bins, alpha=0.5, density=True, label="synthetic")
        else:
            cats = col["categories"][:20]
            pos = np.arange(len(cats))
            ax.bar(pos - 0.2, _shares(ft.columns[j], cats)[: len(cats)], 0.4, label="real")
            ax.bar(pos + 0.2, _shares(fs.columns[j], cats)[: len(cats)], 0.4, label="synthetic")
            ax.set_xticks(pos, [c or "(missing)" for c in cats], rotation=90, fontsize=6)
        ax.set_title(col["name"], fontsize=9)
        if j == 0:
            ax.legend(fontsize=7)
    names, real = correlations(codec, ft)
    _, fake = correlations(codec, fs)
    if names:
        ax = fig.add_subplot(rows, 2, 2 * rows - 1)
        im = ax.imshow(np.abs(real - fake), vmin=0, vmax=1, cmap="Reds")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_title("|correlation real - synthetic|", fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def default_target(codec: TableCodec, recorded: str) -> str:
    """The run's recorded target, else the last categorical or bool column ("" when none)."""
    if recorded:
        return recorded
    found = [c["name"] for c in codec.columns if c["type"] in ("categorical", "bool")]
    return found[-1] if found else ""


def evaluate_table(
    model: Any,
    data_cfg: Any,
    real: str | None,
    *,
    n: int | None = None,
    seed: int = 0,
    target: str = "",
) -> tuple[dict[str, Any], list[list[str]], list[list[str]]]:
    """The report of a table family's run: `n` synthetic rows (default: as many as the training
    rows) against the run's training rows and held-out real rows: those of `real` (a CSV file
    or built-in table) when given, else the test split of the run's own data. Returns the
    figures, the training rows and the synthetic rows (texts)."""
    import torch

    from genlab.data.core import split_indices
    from genlab.data.tabular import table_rows

    codec: TableCodec = model.codec
    info = model.info
    header, rows = table_rows(info.source)
    parts = split_indices(len(rows), **_split_args(data_cfg, info.source))
    train = [rows[i] for i in parts["train"]]
    if real is None or real == info.source:
        held = parts["test"] if len(parts["test"]) else parts["val"]
        holdout = [rows[i] for i in held]
    else:
        real_header, holdout = table_rows(real)
        if real_header != codec.names:
            missing = [c for c in codec.names if c not in real_header]
            extra = [c for c in real_header if c not in codec.names]
            raise DataError(
                f"'{real}' has other columns than the run's table (missing: "
                f"{', '.join(missing) or 'none'}; extra: {', '.join(extra) or 'none'}; the "
                "columns must match in name and order)"
            )
    count = n or len(train)
    g = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        x = model.sample(count, generator=g)
    synth = decoded_texts(codec, codec.decode(x.cpu().double().numpy()))
    goal = default_target(codec, target or info.record.target_name)
    return report(codec, train, holdout, synth, target=goal, seed=seed), train, synth


def _split_args(data_cfg: Any, source: str) -> dict[str, Any]:
    split = data_cfg.split()
    return {
        "val_fraction": split.val_fraction,
        "test_fraction": split.test_fraction,
        "seed": split.seed,
        "what": source,
    }


def write_report(
    out: dict[str, Any],
    codec: TableCodec,
    train: list[list[str]],
    synth: list[list[str]],
    json_path: Path,
    title: str,
) -> list[Path]:
    """The report as JSON, Markdown (beside it, .md) and PNG (.png); returns the files."""
    json_path = Path(json_path)
    write_text_atomic(json_path, json.dumps(out, indent=2) + "\n")
    md = json_path.with_suffix(".md")
    write_text_atomic(md, markdown(out, title))
    written = [json_path, md]
    png = json_path.with_suffix(".png")
    if figure(codec, train, synth, png):
        written.append(png)
    return written
