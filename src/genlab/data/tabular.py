"""The tabular kind: CSV files (plain or .csv.gz) with a header line, features and a target.

Stored and model form: float32 rows (N, D), one dimension per numeric column and one per
category of each non-numeric column (one-hot), every dimension standardized with the training
split's mean and standard deviation; the target apart ("y": class ids or a standardized
number). Settings (`data.tabular.*`): the target column.

Codec: `encode(rows)` turns table rows (lists of values in the order of `record.columns`,
numbers for numeric columns, category names for the others; optionally with the target at
`record.target_index`) into that float form, the target one-hot (classification) or
standardized (regression) after the features. `decode` inverts it: numeric columns
un-standardized and rounded to the decimals the file had, categorical columns as the name of
their largest (un-standardized) one-hot dimension. Missing values do not round-trip: a missing
number becomes the training mean, a missing category the category "?".

Writer: rows as .csv (a header line, then one line per row; `load_dataset` reads it back), or
the float form as .npy.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from genlab.data.core import DataInfo, Dataset, Split, fingerprint, split_indices
from genlab.data.kind import DataKind, Inputs, SplitSettings
from genlab.data.tabular_codec import MISSING_MARKERS, TableCodec, is_missing
from genlab.errors import DataError, UsageError
from genlab.io.atomic import write_bytes_atomic, write_text_atomic

STRAY_SHARE = 0.05
"""A column whose non-numeric values are at most this share of its non-missing values is a
numeric column with a typo: an error names the row, rather than a one-hot of every number."""
TARGET_NAMES = ("target", "label", "class", "y")
MAX_AUTO_CLASSES = 20
MAX_CATEGORIES = 256
OTHER_TABLES = (".data", ".tsv", ".dat")


def is_csv(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".csv", ".csv.gz"))


def _number(text: str) -> float | None:
    """The value as a finite float, or None when it is not a number (nan/inf count as missing)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _list_columns(header: list[str], limit: int = 30) -> str:
    shown = ", ".join(header[:limit])
    return shown if len(header) <= limit else f"{shown}, ... ({len(header) - limit} more)"


def read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (values stripped) and their line numbers; blank lines are skipped."""
    name = path.name
    try:
        raw = path.read_bytes()
        if name.lower().endswith(".gz"):
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{name} is not UTF-8 text (byte {exc.start} cannot be decoded); save it as UTF-8"
        ) from exc
    except EOFError as exc:
        raise DataError(f"{name} is a truncated gzip file; re-download or replace it") from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{name} is not a valid gzip file ({exc}); replace it, or drop the .gz from its name "
            "if it is not compressed"
        ) from exc
    except OSError as exc:
        raise DataError(f"cannot read {name}: {exc.strerror or exc}; check the file") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            fields = [f.strip() for f in fields]
            if header is None:
                header = fields
                continue
            if len(fields) != len(header):
                raise DataError(
                    f"{name} line {reader.line_num} has {len(fields)} fields but the header has "
                    f"{len(header)}; fix or remove that line"
                )
            rows.append(fields)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{name} line {reader.line_num} is not valid CSV ({exc}); fix it") from exc
    if header is None:
        raise DataError(f"{name} is empty; give a CSV file with a header line and data rows")
    if not rows:
        raise DataError(f"{name} has a header line but no data rows; add data rows")
    header = [h or f"column{i + 1}" for i, h in enumerate(header)]
    if all(_is_number(h) for h in header):
        raise DataError(
            f"{name} has no header line: its first line ({', '.join(header[:5])}, ...) is data; "
            "add a first line naming the columns"
        )
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise DataError(f"{name} has two columns named '{column}'; rename one of them")
        seen.add(column)
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        raise DataError(
            f"{name} has a single column '{header[0]}'; it seems to use another separator than "
            "a comma; save it as comma-separated"
        )
    return header, rows, lines


def choose_target(header: list[str], target: str, name: str) -> int:
    """Index of the target column: the one asked for, or one named target/label/class/y."""
    if target:
        if target in header:
            return header.index(target)
        close = difflib.get_close_matches(target, header, n=1, cutoff=0.5)
        if not close:
            lowered = {h.lower(): h for h in header}
            close = [lowered[m] for m in difflib.get_close_matches(target.lower(), lowered, n=1)]
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise DataError(
            f"{name} has no column '{target}'; {hint}columns are: {_list_columns(header)}"
        )
    lowered = [h.lower() for h in header]
    for candidate in TARGET_NAMES:
        if candidate in lowered:
            return lowered.index(candidate)
    hint = ""
    if any(_is_number(h) for h in header):
        hint = (
            " (its first line holds numbers, so the file may lack a header line: add one naming "
            "the columns)"
        )
    raise DataError(
        f"{name} has no column named target, label, class or y; pass --set data.target=COLUMN "
        f"with one of: {_list_columns(header)}{hint}"
    )


def _class_key(text: str) -> str:
    """Normalize a class value: strip whitespace and one trailing '.' ('<=50K.' == '<=50K')."""
    key = text.strip()
    if key.endswith(".") and len(key) > 1:
        key = key[:-1].rstrip()
    return key


def _number_name(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def encode_target(
    values: list[str], lines: list[int], column: str, task: str, name: str
) -> tuple[str, np.ndarray, list[str]]:
    """Decide the task and encode the target: (task, int64 labels or float64 values, classes)."""
    numbers = [_number(v) for v in values]
    numeric = all(n is not None for n in numbers)
    if task == "auto":
        if not numeric:
            task = "classification"
        else:
            distinct = set(numbers)
            integral = all(n.is_integer() for n in distinct)  # type: ignore[union-attr]
            small = len(distinct) <= MAX_AUTO_CLASSES
            task = "classification" if integral and small else "regression"
    if task == "regression":
        if not numeric:
            bad = next(i for i, n in enumerate(numbers) if n is None)
            raise DataError(
                f"{name} target column '{column}' has the non-numeric value '{values[bad]}' "
                f"(line {lines[bad]}); regression needs numbers: fix the value or use "
                "--set data.task=classification"
            )
        return task, np.asarray(numbers, dtype=np.float64), []
    if numeric:
        classes = sorted(set(numbers))  # type: ignore[type-var]
        lookup = {c: i for i, c in enumerate(classes)}
        labels = np.asarray([lookup[n] for n in numbers], dtype=np.int64)
        class_names = [_number_name(c) for c in classes]  # type: ignore[arg-type]
    else:
        keys = [_class_key(v) for v in values]
        class_names = sorted(set(keys))
        lookup = {c: i for i, c in enumerate(class_names)}
        labels = np.asarray([lookup[k] for k in keys], dtype=np.int64)
    if len(class_names) < 2:
        raise DataError(
            f"{name} target column '{column}' has a single value ('{class_names[0]}'); "
            "classification needs at least two classes, so choose another --set data.target"
        )
    return task, labels, class_names


@dataclass
class TabularConfig:
    """The tabular kind's settings (`data.tabular.*`)."""

    target: str = ""
    """The target column (default: a column named target, label, class or y)."""
    codec: Literal["standard", "modes", "gaussian"] = "standard"
    """standard: features standardized and one-hot, the target apart (classifiers);
    modes / gaussian: every column, the target included, in the synthetic-table codec's form
    (genlab.data.tabular_codec; the tabular families set it)."""
    modes: int = 10
    """modes codec: the most mixture components per numeric column."""


@dataclass
class TabularRecord:
    """The tabular kind's part of DataInfo: what `decode` needs to turn floats back into rows."""

    columns: list[str] = field(default_factory=list)
    """The feature columns in file order (the target excluded)."""
    types: list[str] = field(default_factory=list)
    """Per column: "numeric" or "categorical"."""
    categories: list[list[str]] = field(default_factory=list)
    """Per column: its category names in one-hot order ([] for a numeric column)."""
    decimals: list[int] = field(default_factory=list)
    """Per column: digits after the point its numbers had (-1: not known, no rounding)."""
    slices: list[list[int]] = field(default_factory=list)
    """Per column: [start, stop) of the encoded dimensions it occupies."""
    feature_names: list[str] = field(default_factory=list)
    """Per encoded dimension: "age", or "color=red" for a one-hot dimension."""
    feature_mean: list[float] = field(default_factory=list)
    """Per encoded dimension: the training mean that standardizing subtracts."""
    feature_std: list[float] = field(default_factory=list)
    """Per encoded dimension: the training standard deviation it divides by (1 when zero)."""
    target_name: str = ""
    target_index: int = 0
    """The target's position among the file's columns."""
    target_type: str = "classification"
    """classification or regression."""
    target_classes: list[str] = field(default_factory=list)
    """Classification: the class names, in class-id order."""
    target_mean: float = 0.0
    """Regression: the training mean of the target, which standardizing subtracts."""
    target_std: float = 1.0
    target_decimals: int = -1
    """Regression: digits after the point the target's numbers had (-1: no rounding)."""
    missing: dict[str, str] = field(default_factory=dict)
    """Per column with missing values: how they were handled."""
    codec: dict[str, Any] = field(default_factory=dict)
    """The synthetic-table codec's state (genlab.data.tabular_codec); {} in the standard form."""

    @property
    def width(self) -> int:
        """Encoded dimensions of the features."""
        return len(self.feature_names)

    @property
    def target_width(self) -> int:
        """Encoded dimensions of the target (one-hot classes, or one number)."""
        return len(self.target_classes) if self.target_type == "classification" else 1


def _decimals(values: list[str]) -> int:
    """Most digits after the point among number texts; -1 when one is in exponent form."""
    most = 0
    for v in values:
        if _number(v) is None:
            continue
        if "e" in v.lower():
            return -1
        if "." in v:
            most = max(most, len(v.split(".", 1)[1]))
    return most


def _describe_columns(
    header: list[str],
    rows: list[list[str]],
    lines: list[int],
    columns: list[int],
    train: np.ndarray,
    name: str,
) -> tuple[TabularRecord, list[float]]:
    """Column types, categories (sorted; missing -> "?"), decimals and one-hot slices, plus
    each numeric column's fill value for missing entries (its training mean)."""
    rec = TabularRecord()
    fills: list[float] = []
    start = 0
    for col in columns:
        column_name = header[col]
        values = [row[col] for row in rows]
        present = [i for i, v in enumerate(values) if not is_missing(v)]
        n_missing = len(values) - len(present)
        if not present:
            raise DataError(
                f"{name} column '{column_name}' is entirely missing (every value is empty or "
                f"one of {', '.join(repr(m) for m in MISSING_MARKERS if m)}); remove the column"
            )
        words = [i for i in present if not _is_number(values[i])]
        if words and len(words) <= STRAY_SHARE * len(present):
            i = words[0]
            raise DataError(
                f"{name} line {lines[i]}, column '{column_name}': '{values[i]}' is not a number "
                f"but {len(present) - len(words)} of the column's {len(present)} values are "
                f"({len(words)} are not); fix it, or leave it empty or NA if it is missing"
            )
        rec.columns.append(column_name)
        if not words:
            parsed = [None if is_missing(v) else _number(v) for v in values]
            column = np.asarray([np.nan if p is None else p for p in parsed], dtype=np.float64)
            seen = column[train][~np.isnan(column[train])]
            fills.append(float(seen.mean()) if seen.size else 0.0)
            rec.types.append("numeric")
            rec.categories.append([])
            rec.decimals.append(_decimals(values))
            rec.feature_names.append(column_name)
            width = 1
            if n_missing:
                rec.missing[column_name] = (
                    f"{n_missing} missing: filled with the training mean {fills[-1]:.6g}"
                )
        else:
            categories = sorted({"?" if is_missing(v) else v for v in values})
            if len(categories) > MAX_CATEGORIES:
                distinct = len({values[i] for i in words})
                raise DataError(
                    f"{name} column '{column_name}' has {len(categories)} distinct values "
                    f"({distinct} of them not numbers), too many to one-hot encode (limit "
                    f"{MAX_CATEGORIES}); remove the column or make it numeric"
                )
            fills.append(0.0)
            rec.types.append("categorical")
            rec.categories.append(categories)
            rec.decimals.append(-1)
            rec.feature_names.extend(f"{column_name}={c}" for c in categories)
            width = len(categories)
            if n_missing:
                rec.missing[column_name] = f"{n_missing} missing: kept as the category '?'"
        rec.slices.append([start, start + width])
        start += width
    return rec, fills


def _raw_features(rows: list[list[Any]], rec: TabularRecord, fills: list[float]) -> np.ndarray:
    """Feature rows (values in `rec.columns` order) -> float64 (N, D) before standardizing."""
    out = np.zeros((len(rows), rec.width), dtype=np.float64)
    for j, (column, kind, (lo, _)) in enumerate(zip(rec.columns, rec.types, rec.slices)):
        if kind == "numeric":
            for i, row in enumerate(rows):
                out[i, lo] = _numeric_value(row[j], column, fills[j])
            continue
        lookup = {c: k for k, c in enumerate(rec.categories[j])}
        for i, row in enumerate(rows):
            value = _category_text(row[j])
            if value not in lookup:
                raise DataError(
                    f"column '{column}' has the value '{value}', which is none of its "
                    f"categories ({_list_columns(rec.categories[j], 10)}); use one of them"
                )
            out[i, lo + lookup[value]] = 1.0
    return out


def _numeric_value(value: Any, column: str, fill: float) -> float:
    if value is None:
        return fill
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else fill
    text = str(value).strip()
    if is_missing(text):
        return fill
    if not _is_number(text):
        raise DataError(f"column '{column}' holds numbers, not '{text}'; give a number")
    number = _number(text)
    return fill if number is None else number


def _category_text(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return "?" if is_missing(text) else text


def _from_number(value: float, decimals: int) -> int | float:
    if decimals == 0:
        return int(round(value))
    return round(value, decimals) if decimals > 0 else value


def load_csv(path: Path, source: str, split: SplitSettings, cfg: TabularConfig) -> Dataset:
    """Load a CSV file with a header line into standardized float32 features and a target, or
    into the synthetic-table codec's form (`cfg.codec`)."""
    header, rows, lines = read_rows(path)
    return load_table(header, rows, lines, source, split, cfg, path.name)


def load_table(
    header: list[str],
    rows: list[list[str]],
    lines: list[int],
    source: str,
    split: SplitSettings,
    cfg: TabularConfig,
    name: str,
) -> Dataset:
    """Table texts (a header, rows and their line numbers) -> a Dataset, as `cfg.codec` says."""
    if cfg.codec != "standard":
        return _load_synthetic(header, rows, source, split, cfg, name)
    t = choose_target(header, cfg.target, name)
    column = header[t]
    kept = [i for i, row in enumerate(rows) if not is_missing(row[t])]
    if not kept:
        raise DataError(f"{name} target column '{column}' has no values; choose another target")
    dropped = len(rows) - len(kept)
    rows = [rows[i] for i in kept]
    lines = [lines[i] for i in kept]
    features = [i for i in range(len(header)) if i != t]
    if not features:
        raise DataError(f"{name} has only the target column '{column}'; add feature columns")
    targets = [r[t] for r in rows]
    task, y_all, class_names = encode_target(targets, lines, column, split.task, name)
    parts = split_indices(
        len(rows),
        val_fraction=split.val_fraction,
        test_fraction=split.test_fraction,
        seed=split.seed,
        what=source,
    )
    rec, fills = _describe_columns(header, rows, lines, features, parts["train"], name)
    if dropped:
        rec.missing[column] = f"{dropped} rows without a target value: left out"
    x_all = _raw_features([[r[i] for i in features] for r in rows], rec, fills)
    mean = x_all[parts["train"]].mean(axis=0)
    std = x_all[parts["train"]].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_all = (x_all - mean) / std
    target_mean, target_std = 0.0, 1.0
    if task == "regression":
        target_mean = float(y_all[parts["train"]].mean())
        target_std = float(y_all[parts["train"]].std())
        target_std = target_std if target_std > 0 else 1.0
        y_all = (y_all - target_mean) / target_std
    y_dtype = np.int64 if task == "classification" else np.float32
    splits = {
        part: Split(
            x=torch.from_numpy(np.ascontiguousarray(x_all[idx], dtype=np.float32)),
            y=torch.from_numpy(np.ascontiguousarray(y_all[idx], dtype=y_dtype)),
            ids=[f"line {lines[i]}" for i in idx],  # where each row is in the file
        )
        for part, idx in parts.items()
    }
    rec.feature_mean = [float(m) for m in mean]
    rec.feature_std = [float(s) for s in std]
    rec.target_name, rec.target_index, rec.target_type = column, t, task
    rec.target_classes = list(class_names)
    rec.target_mean, rec.target_std = target_mean, target_std
    rec.target_decimals = _decimals(targets) if task == "regression" else -1
    info = DataInfo(
        source=source,
        kind="tabular",
        shape=[rec.width],
        num_classes=len(class_names) if task == "classification" else 0,
        task=task,
        class_names=class_names,
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fingerprint(splits),
        record=rec,
    )
    return Dataset(info=info, splits=splits)


def _load_synthetic(
    header: list[str],
    rows: list[list[str]],
    source: str,
    split: SplitSettings,
    cfg: TabularConfig,
    name: str,
) -> Dataset:
    """Every column in the synthetic-table codec's form; no labels (the target, when one is
    named or found, is only recorded: reports score synthetic data on it)."""
    target = ""
    if cfg.target:
        target = header[choose_target(header, cfg.target, name)]
    else:
        lowered = [h.lower() for h in header]
        target = next((header[lowered.index(c)] for c in TARGET_NAMES if c in lowered), "")
    parts = split_indices(
        len(rows),
        val_fraction=split.val_fraction,
        test_fraction=split.test_fraction,
        seed=split.seed,
        what=source,
    )
    codec = TableCodec.fit(
        header, rows, parts["train"], form=cfg.codec, modes=cfg.modes, seed=split.seed, name=name
    )
    x_all = codec.encode(rows, name)
    splits = {
        part: Split(x=torch.from_numpy(np.ascontiguousarray(x_all[idx], dtype=np.float32)))
        for part, idx in parts.items()
    }
    rec = TabularRecord(
        columns=list(header),
        types=[c["type"] for c in codec.columns],
        categories=[list(c.get("categories", [])) for c in codec.columns],
        decimals=[int(c.get("decimals", -1)) for c in codec.columns],
        slices=codec.column_slices(),
        feature_names=codec.dim_names(),
        target_name=target,
        target_index=header.index(target) if target else 0,
        missing={k: v for k, v in codec.summary().items() if "missing" in v},
        codec=codec.to_dict(),
    )
    info = DataInfo(
        source=source,
        kind="tabular",
        shape=[codec.width],
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fingerprint(splits),
        record=rec,
    )
    return Dataset(info=info, splits=splits)


def wine_table() -> tuple[list[str], list[list[str]]]:
    """scikit-learn's wine data (178 rows, 13 measurements and the cultivar) as table texts."""
    try:
        from sklearn.datasets import load_wine
    except ImportError as exc:
        raise DataError(
            f"the built-in 'wine' needs scikit-learn, which failed to import ({exc}); "
            "install scikit-learn"
        ) from exc
    bunch = load_wine()
    header = [*bunch.feature_names, "cultivar"]
    rows = [
        [_number_text(float(v)) for v in features] + [str(bunch.target_names[int(t)])]
        for features, t in zip(bunch.data, bunch.target)
    ]
    return header, rows


def table_rows(spec: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (cell texts) of a built-in table or a CSV file."""
    if spec in TabularKind.builtins:
        return wine_table()
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"no table at '{spec}': give a CSV file or a built-in ('wine')")
    if not path.is_file() or not is_csv(path):
        raise DataError(
            f"'{spec}' is not a CSV file (a comma-separated text file named .csv or .csv.gz "
            "with a header line); convert it"
        )
    header, rows, _ = read_rows(path)
    return header, rows


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _format(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class TabularKind(DataKind):
    name = "tabular"
    description = "a CSV file (.csv or .csv.gz)"
    Config = TabularConfig
    Record = TabularRecord
    suffixes = (".csv", ".npy")
    builtins = {
        "wine": "scikit-learn's wine table: 178 rows, 13 measurements and the cultivar (target)"
    }

    def claims(self, path: Path) -> bool:
        # other table suffixes are claimed so that `read` can say how to make them readable
        return path.is_file() and (is_csv(path) or path.suffix.lower() in OTHER_TABLES)

    def read(
        self,
        path: Path,
        source: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> Dataset:
        if not is_csv(path):
            raise DataError(
                f"cannot read '{source}': unsupported file type (a comma-separated text file "
                "must be named .csv and start with a header line); rename or convert it"
            )
        return load_csv(path, source, split, cfg)

    def read_builtin(
        self,
        name: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> Dataset:
        if name != "wine":
            raise DataError(
                f"no built-in table '{name}'; built-ins are: {', '.join(self.builtins)}"
            )
        header, rows = wine_table()
        if not cfg.target:
            cfg = TabularConfig(**{**vars(cfg), "target": "cultivar"})
        return load_table(header, rows, list(range(2, len(rows) + 2)), name, split, cfg, name)

    def notes(self, info: DataInfo) -> list[str]:
        """How each column's missing values were handled (printed after training)."""
        rec: TabularRecord = info.record
        return [f"column '{k}': {v}" for k, v in rec.missing.items()]

    def header(self, info: DataInfo, with_target: bool) -> list[str]:
        """The column names of rows (with the target at its place in the file, if asked)."""
        rec: TabularRecord = info.record
        names = list(rec.columns)
        if with_target:
            names.insert(rec.target_index, rec.target_name)
        return names

    def read_inputs(self, path: Path, info: DataInfo) -> Inputs:
        """The rows of a CSV file with the run's feature columns (by name, in any order; other
        columns are ignored), named by their row number (1 = the first row after the header);
        labelled by the target column when the file has it."""
        rec: TabularRecord = info.record
        if not (path.is_file() and is_csv(path)):
            raise DataError(f"{path} is not a CSV file (.csv or .csv.gz); give one")
        header, rows, _ = read_rows(path)
        missing = [c for c in rec.columns if c not in header]
        if missing:
            raise DataError(
                f"{path.name} lacks the column '{missing[0]}' that the run was trained on "
                f"({len(missing)} missing); it needs {_list_columns(rec.columns, 10)}"
            )
        where = [header.index(c) for c in rec.columns]
        x = self.encode([[row[i] for i in where] for row in rows], info)
        labels = None
        if rec.target_name in header:
            t = header.index(rec.target_name)
            labels = [row[t] for row in rows]
        return Inputs(names=[str(i + 1) for i in range(len(rows))], x=x, labels=labels)

    def _with_target(self, n_values: int, rec: TabularRecord, what: str) -> bool:
        if n_values == len(rec.columns):
            return False
        if n_values == len(rec.columns) + 1 and rec.target_name:
            return True
        raise UsageError(
            f"{what} has {n_values} values a row, but the data has {len(rec.columns)} feature "
            f"columns ({_list_columns(rec.columns, 10)}), plus the target '{rec.target_name}'"
        )

    def encode(self, data: Any, info: DataInfo) -> torch.Tensor:
        """Rows (lists of values in `record.columns` order, or with the target at
        `record.target_index`) -> float32 (N, D), or (N, D + target width) with the target."""
        rec: TabularRecord = info.record
        if rec.codec:
            texts = [["" if v is None else str(v) for v in row] for row in data]
            z = TableCodec.from_dict(rec.codec).encode(texts, "the rows to encode")
            return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
        rows = [list(row) for row in data]
        with_target = bool(rows) and self._with_target(len(rows[0]), rec, "a row")
        for row in rows:
            if self._with_target(len(row), rec, "a row") != with_target:
                raise UsageError("rows to encode must all have the same number of values")
        targets = [row.pop(rec.target_index) for row in rows] if with_target else []
        fills = [
            rec.feature_mean[lo] if kind == "numeric" else 0.0
            for kind, (lo, _) in zip(rec.types, rec.slices)
        ]
        raw = _raw_features(rows, rec, fills)
        x = (raw - np.asarray(rec.feature_mean)) / np.asarray(rec.feature_std)
        if with_target:
            x = np.concatenate([x, self._encode_target(targets, rec)], axis=1)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def _encode_target(self, values: list[Any], rec: TabularRecord) -> np.ndarray:
        if rec.target_type == "regression":
            numbers = [_numeric_value(v, rec.target_name, math.nan) for v in values]
            if any(math.isnan(v) for v in numbers):
                raise DataError(f"the target '{rec.target_name}' of a row to encode is missing")
            return ((np.asarray(numbers) - rec.target_mean) / rec.target_std)[:, None]
        lookup = {c: k for k, c in enumerate(rec.target_classes)}
        out = np.zeros((len(values), len(lookup)), dtype=np.float64)
        for i, value in enumerate(values):
            key = _class_key(str(value))
            number = _number(key) if not isinstance(value, bool) else None
            if key not in lookup and number is not None:
                key = _number_name(number)
            if key not in lookup:
                raise DataError(
                    f"the target '{rec.target_name}' has the value '{value}', which is none "
                    f"of its classes ({_list_columns(rec.target_classes, 10)})"
                )
            out[i, lookup[key]] = 1.0
        return out

    def decode(self, x: Any, info: DataInfo) -> list[list[Any]]:
        """float (N, D) -> rows of feature values; (N, D + target width) -> full rows."""
        rec: TabularRecord = info.record
        z = torch.as_tensor(x).detach().to("cpu", torch.float64).numpy()
        if rec.codec:
            return TableCodec.from_dict(rec.codec).decode(z)
        if z.ndim != 2:
            raise UsageError(f"tabular samples must be (N, D); got shape {tuple(z.shape)}")
        if z.shape[1] not in (rec.width, rec.width + rec.target_width):
            raise UsageError(
                f"tabular samples have {z.shape[1]} values a row; this data encodes "
                f"{rec.width} (features) or {rec.width + rec.target_width} (with the target)"
            )
        raw = z[:, : rec.width] * np.asarray(rec.feature_std) + np.asarray(rec.feature_mean)
        rows: list[list[Any]] = [[] for _ in range(len(z))]
        for j, (lo, hi) in enumerate(rec.slices):
            if rec.types[j] == "numeric":
                for row, value in zip(rows, raw[:, lo]):
                    row.append(_from_number(float(value), rec.decimals[j]))
            else:
                for row, k in zip(rows, raw[:, lo:hi].argmax(axis=1)):
                    row.append(rec.categories[j][int(k)])
        if z.shape[1] > rec.width:
            for row, value in zip(rows, self._decode_target(z[:, rec.width :], rec)):
                row.insert(rec.target_index, value)
        return rows

    def _decode_target(self, z: np.ndarray, rec: TabularRecord) -> list[Any]:
        if rec.target_type == "regression":
            values = z[:, 0] * rec.target_std + rec.target_mean
            return [_from_number(float(v), rec.target_decimals) for v in values]
        names = [rec.target_classes[int(k)] for k in z.argmax(axis=1)]
        numbers = [_number(n) for n in rec.target_classes]
        if all(n is not None for n in numbers):  # classes that were numbers stay numbers
            return [_from_number(float(n), 0 if float(n).is_integer() else -1) for n in names]
        return names

    def write(self, samples: Any, path: Path, info: DataInfo, **options: Any) -> list[Path]:
        """Samples (float rows as `decode` reads them, or decoded rows) -> a .csv file with a
        header line (the target's column too when the rows hold it), or float32 rows as .npy."""
        path = Path(path)
        self.check_suffix(path)
        if options:
            raise UsageError(f"the tabular writer takes no options; got {', '.join(options)}")
        encoded = isinstance(samples, (torch.Tensor, np.ndarray))
        if path.suffix.lower() == ".npy":
            x = torch.as_tensor(samples) if encoded else self.encode(samples, info)
            buf = io.BytesIO()
            np.save(buf, x.detach().cpu().to(torch.float32).numpy())
            write_bytes_atomic(path, buf.getvalue())
            return [path]
        rows = self.decode(samples, info) if encoded else [list(r) for r in samples]
        if info.record.codec:
            codec = TableCodec.from_dict(info.record.codec)
            text = io.StringIO()
            out = csv.writer(text, lineterminator="\n")
            out.writerow(codec.names)
            out.writerows([codec.text(j, v) for j, v in enumerate(row)] for row in rows)
            write_text_atomic(path, text.getvalue())
            return [path]
        n_values = len(rows[0]) if rows else len(info.record.columns)
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\n")
        out.writerow(self.header(info, self._with_target(n_values, info.record, "a sample")))
        out.writerows([_format(v) for v in row] for row in rows)
        write_text_atomic(path, text.getvalue())
        return [path]

    def record_from_flat(self, flat: dict[str, Any], header: dict[str, Any]) -> TabularRecord:
        """genlab 0.x kept only the encoded names ("age", "color=red"), mean and std: columns
        are rebuilt from the names (a run of "column=..." names is one categorical column), the
        target goes last, and decimals are unknown (-1)."""
        names = list(flat.get("feature_names", []))
        rec = TabularRecord(feature_names=names)
        for i, dim in enumerate(names):
            column, sep, category = dim.partition("=")
            if sep and rec.columns and rec.columns[-1] == column and rec.types[-1] != "numeric":
                rec.categories[-1].append(category)
                rec.slices[-1][1] = i + 1
                continue
            categorical = bool(sep) and column not in names
            rec.columns.append(column if categorical else dim)
            rec.types.append("categorical" if categorical else "numeric")
            rec.categories.append([category] if categorical else [])
            rec.decimals.append(-1)
            rec.slices.append([i, i + 1])
        rec.feature_mean = [float(v) for v in flat.get("feature_mean", [])]
        rec.feature_std = [float(v) for v in flat.get("feature_std", [])]
        rec.target_name = str(flat.get("target_name", ""))
        rec.target_index = len(rec.columns)
        rec.target_type = "regression" if header.get("task") == "regression" else "classification"
        rec.target_classes = list(header.get("class_names", []))
        rec.target_mean = float(flat.get("target_mean", 0.0))
        rec.target_std = float(flat.get("target_std", 1.0))
        return rec


KIND = TabularKind()
