"""What the synthetic-table families (ctgan, tvae, copula) share: the layout of the encoded
columns (genlab.data.tabular_codec), its output activations and reconstruction loss, the
conditional vector of discrete columns, and sampling under `--where` conditions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genlab.data import DataInfo
from genlab.data.tabular_codec import MISSING_CATEGORY, Span, TableCodec
from genlab.errors import DataError, UsageError

WHERE_TRIES = 200
"""Conditional sampling draws at most this many batches of -n rows before giving up."""


@dataclass(frozen=True)
class WhereOption:
    """The sampling option every table family takes."""

    where: str = ""
    """Conditions on categorical or bool columns, kept exact: "sex=Female,income=>50K" (the
    first '=' splits column and value)."""


@dataclass(frozen=True)
class TableEvalOptions:
    """The evaluation option every table family takes."""

    target: str = ""
    """Column the TSTR classifier predicts (default: the run's data.tabular.target, else a
    column named target/label/class/y, else the last categorical or bool column)."""


def is_table_model(model: object) -> bool:
    """Whether a model synthesizes tables (it holds a table codec): its report is
    genlab.metrics.tabular's."""
    return isinstance(getattr(model, "codec", None), TableCodec)


def table_codec(info: DataInfo, family: str, form: str) -> TableCodec:
    """The codec of a table loaded in `form`; a DataError for other data."""
    record = info.record
    if info.kind != "tabular" or not getattr(record, "codec", None):
        raise DataError(
            f"'{family}' learns CSV tables: give a .csv file or the built-in 'wine' "
            f"('{info.source}' is {info.kind} data)"
        )
    codec = TableCodec.from_dict(record.codec)
    if codec.form != form:
        raise UsageError(
            f"'{family}' reads tables in the {form} codec form; remove data.tabular.codec="
            f"{codec.form} from --set"
        )
    return codec


def activate(raw: torch.Tensor, spans: list[Span], *, hard: bool = False, tau: float = 0.2):
    """A generator's raw output (B, D) -> encoded rows: tanh for alphas, a softmax (Gumbel-
    softmax with temperature `tau` while training, one-hot with `hard`) for one-hot groups."""
    parts = []
    for s in spans:
        block = raw[:, s.start : s.start + s.width]
        if s.activation == "tanh":
            parts.append(torch.tanh(block))
        elif s.activation == "softmax":
            if hard:
                parts.append(F.one_hot(block.argmax(1), s.width).to(block.dtype))
            else:
                parts.append(F.gumbel_softmax(block, tau=tau))
        else:
            parts.append(block)
    return torch.cat(parts, dim=1)


def reconstruction(
    raw: torch.Tensor, x: torch.Tensor, spans: list[Span], log_sigma: torch.Tensor
) -> torch.Tensor:
    """Per-row negative log-likelihood (up to a constant) of encoded rows x under a decoder's
    raw output: Gaussian on alphas with per-column scale exp(log_sigma), cross-entropy on
    one-hot groups. (B,)"""
    total = torch.zeros(x.shape[0], device=x.device)
    k = 0
    for s in spans:
        target = x[:, s.start : s.start + s.width]
        out = raw[:, s.start : s.start + s.width]
        if s.activation == "softmax":
            total = total + F.cross_entropy(out, target.argmax(1), reduction="none")
        else:
            mean = torch.tanh(out[:, 0]) if s.activation == "tanh" else out[:, 0]
            sig = log_sigma[k]
            total = total + 0.5 * ((target[:, 0] - mean) / sig.exp()) ** 2 + sig
            k += 1
    return total


def n_scalars(spans: list[Span]) -> int:
    """The spans that are one continuous value (alphas or normal scores)."""
    return sum(1 for s in spans if s.activation != "softmax")


def parse_where(where: str, codec: TableCodec) -> dict[int, str]:
    """ "col=value,..." -> {column index: category}; one-line errors for unknown names."""
    out: dict[int, str] = {}
    for item in filter(None, (w.strip() for w in where.split(","))):
        column, sep, value = item.partition("=")
        column, value = column.strip(), value.strip()
        if not sep or not column:
            raise UsageError(f"--where takes column=value pairs separated by commas; got '{item}'")
        if column not in codec.names:
            raise UsageError(
                f"--where: no column '{column}'; columns are: {', '.join(codec.names)}"
            )
        j = codec.names.index(column)
        col = codec.columns[j]
        if col["type"] not in ("categorical", "bool"):
            raise UsageError(
                f"--where: '{column}' is a {col['type']} column; conditions take categorical "
                "or bool columns"
            )
        if value not in col["categories"]:
            shown = ", ".join(
                c if c != MISSING_CATEGORY else "'' (missing)" for c in col["categories"]
            )
            raise UsageError(
                f"--where: column '{column}' has no category '{value}' in the training data; "
                f"valid: {shown}"
            )
        out[j] = value
    return out


def sample_where(
    draw: Callable[[int, dict[int, str]], torch.Tensor],
    n: int,
    where: str,
    codec: TableCodec,
) -> torch.Tensor:
    """n encoded rows from `draw(count, conditions)` whose conditioned columns decode to the
    asked categories exactly (rejection: rows that do not match are drawn again)."""
    conditions = parse_where(where, codec)
    if not conditions:
        return draw(n, conditions)
    kept: list[torch.Tensor] = []
    found = 0
    for _ in range(WHERE_TRIES):
        x = draw(max(n, 64), conditions)
        rows = codec.decode(x.detach().cpu().double().numpy())
        ok = torch.tensor([all(row[j] == v for j, v in conditions.items()) for row in rows])
        kept.append(x[ok.to(x.device)])
        found += int(ok.sum())
        if found >= n:
            return torch.cat(kept)[:n]
    shown = ",".join(f"{codec.names[j]}={v}" for j, v in conditions.items())
    raise UsageError(
        f"--where {shown}: only {found} of {WHERE_TRIES} x {max(n, 64)} generated rows match; "
        "the combination is too rare for this model: loosen the conditions"
    )
