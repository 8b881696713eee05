"""The codec of synthetic tables: every column of a CSV file <-> float rows a generator makes.

Fitted on the training rows and kept in the run (JSON, in the tabular record's `codec`), so that
sampling decodes with the file alone. Column types, guessed from the values:

- numeric: numbers; `integer` when every value is a whole number written without a point;
- bool: true/false in any case (the file's own spelling is kept);
- datetime: dates or date-times in one of `DATE_FORMATS`, as numbers (days, or seconds);
- categorical: anything else (its category names kept, in sorted order).

Missing values (`MISSING_MARKERS`, any case) are never dropped: a column that has some gets its
own indicator (numeric: an extra "missing" mode; categorical, bool: the category "").

Two encoded forms (`form`):

- "modes" (CTGAN's mode-specific normalisation, for networks): a numeric column is one scalar
  alpha = (x - mean_k) / (4 std_k) for its mode k of a variational Gaussian mixture
  (scikit-learn's BayesianGaussianMixture), followed by the one-hot of k; a categorical column is
  one-hot.
- "gaussian" (for the Gaussian copula): one normal score per column, Phi^-1 of the value's
  position in the training distribution (numeric: piecewise-linear empirical CDF through at most
  `KNOTS` knots; categorical: the middle of the category's frequency interval), plus one for the
  missing indicator of a numeric column that has missing values.

Decoding restores names, types, categories and value ranges: numbers are clipped to the training
range, rounded to the digits the file had, whole for integers, formatted back for datetimes.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from genlab.errors import DataError

MISSING_MARKERS = ("", "na", "n/a", "null", "?", "nan")
"""Cell texts (compared in lower case) that mean a missing value."""
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
)
FORMS = ("modes", "gaussian")
KNOTS = 1000
FIT_VALUES = 2000
"""The mixture of a numeric column is fitted on at most this many of its training values (a
seeded random subset): its cost grows with them, its modes hardly change past a few thousand."""
MAX_CATEGORIES = 256
MISSING_CATEGORY = ""
"""The category (and the decoded cell) of a missing categorical value."""


def is_missing(text: str) -> bool:
    """Whether a cell's text is one of the missing-value markers."""
    return text.strip().lower() in MISSING_MARKERS


def to_number(text: str) -> float | None:
    """The text as a finite float, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _date_format(values: list[str]) -> str | None:
    for fmt in DATE_FORMATS:
        try:
            for v in values:
                dt.datetime.strptime(v, fmt)
        except ValueError:
            continue
        return fmt
    return None


def _epoch(text: str, fmt: str, unit: float) -> float:
    when = dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
    return when.timestamp() / unit


def _decimals(values: list[str]) -> int:
    most = 0
    for v in values:
        if "e" in v.lower():
            return -1
        if "." in v:
            most = max(most, len(v.split(".", 1)[1]))
    return most


def guess_type(values: list[str]) -> str:
    """numeric, integer, bool, datetime or categorical, from a column's non-missing texts."""
    lowered = {v.lower() for v in values}
    if lowered <= {"true", "false"}:
        return "bool"
    numbers = [to_number(v) for v in values]
    if all(n is not None for n in numbers):
        whole = all(
            n.is_integer() and "." not in v and "e" not in v.lower()  # type: ignore[union-attr]
            for n, v in zip(numbers, values)
        )
        return "integer" if whole else "numeric"
    if any(c.isdigit() for c in values[0]) and _date_format(values[:200]) and _date_format(values):
        return "datetime"
    return "categorical"


@dataclass
class Span:
    """A run of encoded dimensions: `activation` is "tanh" (a mode's alpha), "softmax" (a one-hot
    group: modes or categories), or "normal" (a normal score)."""

    column: int
    start: int
    width: int
    activation: str
    discrete: bool
    """Whether the span is a column's categories (a generator can be conditioned on it)."""


class TableCodec:
    """A fitted codec: `encode` table texts -> float64 rows, `decode` rows -> typed values."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.columns: list[dict[str, Any]] = state["columns"]
        self.form: str = state["form"]
        self.spans: list[Span] = []
        start = 0
        for j, col in enumerate(self.columns):
            for activation, width, discrete in _layout(col, self.form):
                self.spans.append(Span(j, start, width, activation, discrete))
                start += width
        self.width = start

    # fitting --------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        header: list[str],
        rows: list[list[str]],
        train: np.ndarray,
        *,
        form: str = "modes",
        modes: int = 10,
        seed: int = 0,
        name: str = "the table",
    ) -> TableCodec:
        """Guess each column's type from all rows; fit its statistics on the `train` rows."""
        if form not in FORMS:
            raise DataError(f"unknown tabular codec form '{form}'; use one of {', '.join(FORMS)}")
        columns = []
        for j, column in enumerate(header):
            texts = [row[j] for row in rows]
            present = [t for t in texts if not is_missing(t)]
            if not present:
                raise DataError(
                    f"{name} column '{column}' is entirely missing (every value is empty or a "
                    "missing marker); remove the column"
                )
            kind = guess_type(present)
            train_texts = [texts[i] for i in train]
            train_present = [t for t in train_texts if not is_missing(t)] or present
            col: dict[str, Any] = {
                "name": column,
                "type": kind,
                "missing": len(present) < len(texts),
                "missing_share": 1.0 - len(train_present) / max(len(train_texts), 1),
            }
            if kind in ("categorical", "bool"):
                _fit_categories(col, texts, train_texts, name)
            else:
                _fit_numbers(col, present, train_present, form, modes, seed)
            columns.append(col)
        return cls({"form": form, "columns": columns})

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TableCodec:
        return cls(state)

    def to_dict(self) -> dict[str, Any]:
        return self.state

    # names ----------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    def dim_names(self) -> list[str]:
        """One name per encoded dimension ("age", "age#mode2", "age#missing", "sex=Female")."""
        out: list[str] = []
        for span in self.spans:
            col = self.columns[span.column]
            first = span.start == self.column_slices()[span.column][0]
            if span.discrete:
                out.extend(f"{col['name']}={c}" for c in col["categories"])
            elif span.activation == "softmax":
                out.extend(f"{col['name']}#mode{k}" for k in range(span.width))
            else:
                out.append(col["name"] if first else f"{col['name']}#missing")
        return out

    def column_slices(self) -> list[list[int]]:
        """Per column: [start, stop) of its encoded dimensions."""
        out = [[self.width, 0] for _ in self.columns]
        for span in self.spans:
            lo, hi = out[span.column]
            out[span.column] = [min(lo, span.start), max(hi, span.start + span.width)]
        return out

    # values ---------------------------------------------------------------------------------
    def parse(
        self, texts: list[list[str]], where: str = "the data", *, strict: bool = True
    ) -> list[list[Any]]:
        """Table texts (one list per row, in column order) -> typed values per column (None when
        missing): floats for numeric/integer/datetime columns, category texts otherwise.
        `strict`: a category the codec does not know is an error (else kept as its text)."""
        if texts and len(texts[0]) != len(self.columns):
            raise DataError(
                f"{where} has {len(texts[0])} columns; the run's table has {len(self.columns)} "
                f"({', '.join(self.names)})"
            )
        out: list[list[Any]] = []
        for j, col in enumerate(self.columns):
            values: list[Any] = []
            for i, row in enumerate(texts):
                values.append(_parse_cell(row[j], col, i, where, strict))
            out.append(values)
        return out

    def encode(self, texts: list[list[str]], where: str = "the data") -> np.ndarray:
        """Table texts (rows in column order) -> float64 (N, width)."""
        columns = self.parse(texts, where)
        n = len(texts)
        out = np.zeros((n, self.width), dtype=np.float64)
        for j, col in enumerate(self.columns):
            values = columns[j]
            spans = [s for s in self.spans if s.column == j]
            if col["type"] in ("categorical", "bool"):
                idx = np.asarray([col["categories"].index(v) for v in values])
                if self.form == "modes":
                    out[np.arange(n), spans[0].start + idx] = 1.0
                else:
                    out[:, spans[0].start] = _category_scores(col)[idx]
                continue
            miss = np.asarray([v is None for v in values])
            x = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
            if self.form == "modes":
                alpha, mode = _mode_encode(col, x)
                out[:, spans[0].start] = alpha
                out[np.arange(n), spans[1].start + mode] = 1.0
            else:
                out[:, spans[0].start] = _normal_encode(col, x)
                if col["missing"]:
                    out[:, spans[1].start] = np.where(miss, *_flag_scores(col))
        return out

    def decode(self, z: np.ndarray) -> list[list[Any]]:
        """Float rows (N, width) -> rows of values: floats rounded as the file had them, ints,
        category texts, date texts; None for a missing value."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.width:
            raise DataError(f"table samples must be (N, {self.width}); got {tuple(z.shape)}")
        n = len(z)
        columns: list[list[Any]] = []
        for j, col in enumerate(self.columns):
            spans = [s for s in self.spans if s.column == j]
            first = spans[0]
            block = z[:, first.start : first.start + first.width]
            if col["type"] in ("categorical", "bool"):
                if self.form == "modes":
                    idx = block.argmax(axis=1)
                else:
                    idx = _category_from_scores(col, block[:, 0])
                columns.append([col["categories"][int(k)] for k in idx])
                continue
            if self.form == "modes":
                modes = z[:, spans[1].start : spans[1].start + spans[1].width].argmax(axis=1)
                x = _mode_decode(col, block[:, 0], modes)
                miss = modes == len(col["means"])
            else:
                x = _normal_decode(col, block[:, 0])
                miss = np.zeros(n, dtype=bool)
                if col["missing"]:
                    lo, hi = _flag_scores(col)
                    miss = z[:, spans[1].start] > (lo + hi) / 2
            columns.append([None if m else _finish(col, v) for v, m in zip(x, miss)])
        return [list(row) for row in zip(*columns)] if columns else [[] for _ in range(n)]

    def text(self, j: int, value: Any) -> str:
        """A decoded value of column j as its CSV cell ("" for missing)."""
        col = self.columns[j]
        if value is None:
            return ""
        if col["type"] == "datetime":
            when = dt.datetime.fromtimestamp(value * col["unit"], tz=dt.UTC)
            return when.strftime(col["format"])
        if isinstance(value, float):
            return repr(value)
        return str(value)

    def summary(self) -> dict[str, str]:
        """Per column: its type and how missing values are handled."""
        out = {}
        for col in self.columns:
            line = col["type"]
            if col["missing"]:
                share = 100 * col["missing_share"]
                how = (
                    "its own indicator"
                    if col["type"] not in ("categorical", "bool")
                    else ("the category ''")
                )
                line += f"; {share:.1f}% missing in training, modelled by {how} (decoded empty)"
            out[col["name"]] = line
        return out


def _layout(col: dict[str, Any], form: str) -> list[tuple[str, int, bool]]:
    """The spans of one column: (activation, width, discrete)."""
    if col["type"] in ("categorical", "bool"):
        if form == "modes":
            return [("softmax", len(col["categories"]), True)]
        return [("normal", 1, False)]
    if form == "modes":
        return [("tanh", 1, False), ("softmax", len(col["means"]) + int(col["missing"]), False)]
    return [("normal", 1, False)] + ([("normal", 1, False)] if col["missing"] else [])


def _fit_categories(
    col: dict[str, Any], texts: list[str], train_texts: list[str], name: str
) -> None:
    values = [MISSING_CATEGORY if is_missing(t) else t for t in texts]
    categories = sorted(set(values))
    if len(categories) > MAX_CATEGORIES:
        raise DataError(
            f"{name} column '{col['name']}' has {len(categories)} distinct values, too many to "
            f"one-hot encode (limit {MAX_CATEGORIES}); remove the column or make it numeric"
        )
    counts = dict.fromkeys(categories, 0)
    for t in train_texts:
        counts[MISSING_CATEGORY if is_missing(t) else t] += 1
    col["categories"] = categories
    col["counts"] = [counts[c] for c in categories]


def _fit_numbers(
    col: dict[str, Any],
    present: list[str],
    train_present: list[str],
    form: str,
    modes: int,
    seed: int,
) -> None:
    if col["type"] == "datetime":
        fmt = _date_format(present)
        assert fmt is not None
        unit = 86400.0 if "%H" not in fmt else 1.0
        col["format"], col["unit"] = fmt, unit
        values = np.asarray([_epoch(t, fmt, unit) for t in train_present])
        col["decimals"] = 0
    else:
        values = np.asarray([float(t) for t in train_present])
        col["decimals"] = 0 if col["type"] == "integer" else _decimals(present)
    if col["type"] == "datetime":  # the whole file's range, so that every value round-trips
        full = [_epoch(t, col["format"], col["unit"]) for t in present]
    else:
        full = [float(t) for t in present]
    col["min"], col["max"] = min(full), max(full)
    if form == "modes":
        _fit_modes(col, values, modes, seed)
    else:
        _fit_knots(col, values)


def _fit_modes(col: dict[str, Any], values: np.ndarray, modes: int, seed: int) -> None:
    """Means and standard deviations of the mixture's components that carry weight."""
    std = float(values.std())
    if std == 0 or len(np.unique(values)) < 2:
        col["means"], col["stds"], col["weights"] = [float(values[0])], [1.0], [1.0]
        return
    means, stds, weights = _mixture(
        np.ascontiguousarray(values, dtype=np.float64).tobytes(), modes, seed
    )
    col["means"], col["stds"], col["weights"] = list(means), list(stds), list(weights)


@functools.lru_cache(maxsize=256)
def _mixture(raw: bytes, modes: int, seed: int) -> tuple[tuple[float, ...], ...]:
    """The weighted components of a variational Gaussian mixture fitted to the float64 values
    in `raw` (cached: the fit is deterministic, and the same data is often loaded again)."""
    from sklearn.mixture import BayesianGaussianMixture

    values = np.frombuffer(raw, dtype=np.float64)
    rng = np.random.default_rng(seed)
    fit_on = values if len(values) <= FIT_VALUES else rng.choice(values, FIT_VALUES, replace=False)
    gm = BayesianGaussianMixture(
        n_components=min(modes, len(np.unique(fit_on))),
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=0.001,
        max_iter=100,
        random_state=seed,
    )
    with warnings.catch_warnings():  # a mixture that stops at max_iter still encodes exactly
        warnings.simplefilter("ignore")
        gm.fit(fit_on.reshape(-1, 1))
    keep = gm.weights_ > 0.005
    means = gm.means_.reshape(-1)[keep]
    stds = np.sqrt(gm.covariances_.reshape(-1))[keep]
    order = np.argsort(means)
    floor = 1e-6 * float(values.std())
    return (
        tuple(float(m) for m in means[order]),
        tuple(max(float(s), floor) for s in stds[order]),
        tuple(float(w) for w in gm.weights_[keep][order]),
    )


def clear_codec_cache() -> None:
    """Forget the cached mixture fits (so that a timed fit includes them)."""
    _mixture.cache_clear()


def _mode_encode(col: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """alpha and the mode of each value (the most probable component; missing: the last)."""
    means, stds = np.asarray(col["means"]), np.asarray(col["stds"])
    weights = np.asarray(col["weights"])
    filled = np.where(np.isnan(x), means[0], x)[:, None]
    logp = np.log(weights) - np.log(stds) - 0.5 * ((filled - means) / stds) ** 2  # (N, K)
    mode = logp.argmax(axis=1)
    alpha = (filled[:, 0] - means[mode]) / (4 * stds[mode])
    missing = np.isnan(x)
    mode = np.where(missing, len(means), mode)
    return np.where(missing, 0.0, alpha), mode


def _mode_decode(col: dict[str, Any], alpha: np.ndarray, modes: np.ndarray) -> np.ndarray:
    means, stds = np.asarray(col["means"]), np.asarray(col["stds"])
    k = np.minimum(modes, len(means) - 1)
    return alpha * 4 * stds[k] + means[k]


def _fit_knots(col: dict[str, Any], values: np.ndarray) -> None:
    """Knots of the empirical CDF: (value, cumulative share at its middle), strictly rising."""
    unique, counts = np.unique(values, return_counts=True)
    cdf = (np.cumsum(counts) - counts / 2) / counts.sum()
    if len(unique) > KNOTS:
        pick = np.unique(np.linspace(0, len(unique) - 1, KNOTS).round().astype(int))
        unique, cdf = unique[pick], cdf[pick]
    if col["min"] < unique[0]:  # values seen outside the training rows still round-trip
        unique, cdf = np.r_[col["min"], unique], np.r_[cdf[0] / 2, cdf]
    if col["max"] > unique[-1]:
        unique, cdf = np.r_[unique, col["max"]], np.r_[cdf, (1 + cdf[-1]) / 2]
    col["knots"] = [float(v) for v in unique]
    col["cdf"] = [float(c) for c in cdf]


def _phi(u: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(np.clip(u, 1e-6, 1 - 1e-6))


def _normal_encode(col: dict[str, Any], x: np.ndarray) -> np.ndarray:
    knots, cdf = np.asarray(col["knots"]), np.asarray(col["cdf"])
    if len(knots) == 1:
        return np.zeros(len(x))
    u = np.interp(np.where(np.isnan(x), knots[0], x), knots, cdf)
    return np.where(np.isnan(x), 0.0, _phi(u))


def _normal_decode(col: dict[str, Any], z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    knots, cdf = np.asarray(col["knots"]), np.asarray(col["cdf"])
    if len(knots) == 1:
        return np.full(len(z), knots[0])
    return np.interp(ndtr(z), cdf, knots)


def _flag_scores(col: dict[str, Any]) -> tuple[float, float]:
    """Normal scores of (missing, present) for a numeric column's missing indicator."""
    share = min(max(col["missing_share"], 1e-3), 1 - 1e-3)
    missing, present = _phi(np.asarray([1 - share / 2, (1 - share) / 2]))
    return float(missing), float(present)


def _category_scores(col: dict[str, Any]) -> np.ndarray:
    counts = np.asarray(col["counts"], dtype=np.float64) + 1e-9
    upper = np.cumsum(counts) / counts.sum()
    return _phi(upper - counts / counts.sum() / 2)


def _category_from_scores(col: dict[str, Any], z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    counts = np.asarray(col["counts"], dtype=np.float64) + 1e-9
    upper = np.cumsum(counts) / counts.sum()
    return np.minimum(np.searchsorted(upper, ndtr(z)), len(counts) - 1)


def _parse_cell(text: Any, col: dict[str, Any], row: int, where: str, strict: bool) -> Any:
    if text is None:
        return None if col["type"] not in ("categorical", "bool") else MISSING_CATEGORY
    text = str(text).strip()
    if is_missing(text):
        return None if col["type"] not in ("categorical", "bool") else MISSING_CATEGORY
    kind = col["type"]
    if kind in ("categorical", "bool"):
        if text not in col["categories"] and strict:
            shown = ", ".join(c for c in col["categories"][:20] if c)
            raise DataError(
                f"{where} row {row + 1}: column '{col['name']}' has the value '{text}', which is "
                f"none of its categories ({shown}); use one of them"
            )
        return text
    if kind == "datetime":
        try:
            return _epoch(text, col["format"], col["unit"])
        except ValueError:
            raise DataError(
                f"{where} row {row + 1}: column '{col['name']}' holds dates like "
                f"{dt.datetime(2020, 1, 31).strftime(col['format'])}, not '{text}'"
            ) from None
    value = to_number(text)
    if value is None:
        raise DataError(
            f"{where} row {row + 1}: column '{col['name']}' holds numbers, not '{text}'; fix "
            "the value or mark it missing (empty, NA)"
        )
    return value


def _finish(col: dict[str, Any], value: float) -> Any:
    value = min(max(float(value), col["min"]), col["max"])
    decimals = col["decimals"]
    if decimals == 0:
        return int(round(value)) if col["type"] != "datetime" else float(round(value))
    return round(value, decimals) if decimals > 0 else value
