"""Reader for CSV files (plain or .csv.gz) with a header line: tabular features and a target."""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from genlab.data.core import DataInfo, Dataset, Split, fingerprint, split_indices
from genlab.errors import DataError

MISSING = ("", "?")
TARGET_NAMES = ("target", "label", "class", "y")
MAX_AUTO_CLASSES = 20
MAX_CATEGORIES = 256


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


def encode_features(
    header: list[str], rows: list[list[str]], columns: list[int], train: np.ndarray, name: str
) -> tuple[np.ndarray, list[str]]:
    """Numeric columns as floats (missing -> train mean); others one-hot with sorted categories."""
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for col in columns:
        values = [row[col] for row in rows]
        if all(v in MISSING or _is_number(v) for v in values):
            parsed = [None if v in MISSING else _number(v) for v in values]
            column = np.asarray([np.nan if p is None else p for p in parsed], dtype=np.float64)
            seen = column[train][~np.isnan(column[train])]
            fill = float(seen.mean()) if seen.size else 0.0
            blocks.append(np.where(np.isnan(column), fill, column)[:, None])
            names.append(header[col])
            continue
        cats = ["?" if v in MISSING else v for v in values]
        categories = sorted(set(cats))
        if len(categories) > MAX_CATEGORIES:
            raise DataError(
                f"{name} column '{header[col]}' has {len(categories)} distinct non-numeric values,"
                f" too many to one-hot encode (limit {MAX_CATEGORIES}); "
                "remove the column or make it numeric"
            )
        lookup = {c: i for i, c in enumerate(categories)}
        onehot = np.zeros((len(rows), len(categories)), dtype=np.float64)
        onehot[np.arange(len(rows)), [lookup[c] for c in cats]] = 1.0
        blocks.append(onehot)
        names.extend(f"{header[col]}={c}" for c in categories)
    return np.concatenate(blocks, axis=1), names


def load_csv(
    path: Path,
    source: str,
    *,
    target: str = "",
    task: str = "auto",
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> Dataset:
    """Load a CSV file with a header line into standardized float32 features and a target."""
    name = path.name
    header, rows, lines = read_rows(path)
    t = choose_target(header, target, name)
    column = header[t]
    kept = [i for i, row in enumerate(rows) if row[t] not in MISSING]
    if not kept:
        raise DataError(f"{name} target column '{column}' has no values; choose another target")
    rows = [rows[i] for i in kept]
    lines = [lines[i] for i in kept]
    features = [i for i in range(len(header)) if i != t]
    if not features:
        raise DataError(f"{name} has only the target column '{column}'; add feature columns")
    task, y_all, class_names = encode_target([r[t] for r in rows], lines, column, task, name)
    parts = split_indices(
        len(rows), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, what=source
    )
    x_all, feature_names = encode_features(header, rows, features, parts["train"], name)
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
        split: Split(
            x=torch.from_numpy(np.ascontiguousarray(x_all[idx], dtype=np.float32)),
            y=torch.from_numpy(np.ascontiguousarray(y_all[idx], dtype=y_dtype)),
        )
        for split, idx in parts.items()
    }
    info = DataInfo(
        source=source,
        kind="tabular",
        shape=[len(feature_names)],
        levels=0,
        num_classes=len(class_names) if task == "classification" else 0,
        task=task,
        class_names=class_names,
        feature_names=feature_names,
        feature_mean=[float(m) for m in mean],
        feature_std=[float(s) for s in std],
        target_name=column,
        target_mean=target_mean,
        target_std=target_std,
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fingerprint(splits),
    )
    return Dataset(info=info, splits=splits)
