"""What the synthetic-table families (ctgan, tvae, copula) share: the layout of the encoded
columns (genlab.data.tabular_codec), its output activations and reconstruction loss, the
conditional vector of discrete columns, and sampling under `--where` conditions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

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


class Layout(nn.Module):
    """Where a table's encoded columns sit, as index tensors (buffers that follow the model's
    device, not saved), so that activations and losses run on all columns at once.

    Scalars: the alphas (tanh) and normal scores, in span order. Groups: the one-hot groups,
    padded to the widest, (G, W) dimension indices with a mask of the real ones."""

    def __init__(self, spans: list[Span]) -> None:
        super().__init__()
        scalars = [s for s in spans if s.activation != "softmax"]
        groups = [s for s in spans if s.activation == "softmax"]
        width = max((s.width for s in groups), default=1)
        pad = torch.zeros(len(groups), width, dtype=torch.long)
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        for g, s in enumerate(groups):
            pad[g, : s.width] = torch.arange(s.start, s.start + s.width)
            mask[g, : s.width] = True
        self.group_of = {s.start: g for g, s in enumerate(groups)}
        """A one-hot span's start -> its group index."""
        scalar = torch.tensor([s.start for s in scalars], dtype=torch.long)
        order = torch.cat([scalar, pad[mask]])  # encoded dims in (scalars, groups) order
        self.register_buffer("scalar", scalar, persistent=False)
        self.register_buffer(
            "tanh", torch.tensor([s.activation == "tanh" for s in scalars]), persistent=False
        )
        self.register_buffer("pad", pad, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("inverse", torch.argsort(order), persistent=False)

    def means(self, raw: torch.Tensor) -> torch.Tensor:
        """The scalars' values (B, S): tanh of the alphas, normal scores as they are."""
        values = raw[:, self.scalar]
        return torch.where(self.tanh, torch.tanh(values), values)

    def logits(self, raw: torch.Tensor) -> torch.Tensor:
        """The one-hot groups' logits (B, G, W), -inf where a group is narrower than W."""
        return raw[:, self.pad].masked_fill(~self.mask, -math.inf)

    def assemble(self, scalars: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Scalars (B, S) and group values (B, G, W) -> encoded rows (B, D)."""
        return torch.cat([scalars, groups[:, self.mask]], dim=1)[:, self.inverse]

    def activate(self, raw: torch.Tensor, tau: float) -> torch.Tensor:
        """A generator's raw output (B, D) -> rows: tanh on alphas, Gumbel-softmax with
        temperature tau on one-hot groups (differentiable)."""
        logits = self.logits(raw)
        u = torch.rand_like(logits).clamp(1e-10, 1.0)
        soft = ((logits - torch.log(-torch.log(u))) / tau).softmax(dim=2)
        return self.assemble(self.means(raw), soft)

    def one_hot(self, raw: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One category per group drawn from its softmax (Gumbel-max), as one-hot (B, G, W)."""
        logits = self.logits(raw)
        u = torch.rand(logits.shape, generator=generator, device=raw.device).clamp(1e-10, 1.0)
        pick = (logits - torch.log(-torch.log(u))).argmax(dim=2)  # (B, G)
        return F.one_hot(pick, logits.shape[2]).to(raw.dtype) * self.mask

    def reconstruction(
        self, raw: torch.Tensor, x: torch.Tensor, log_sigma: torch.Tensor
    ) -> torch.Tensor:
        """Per-row negative log-likelihood (up to a constant) of encoded rows x under a
        decoder's raw output: Gaussian on the scalars with scales exp(log_sigma),
        cross-entropy on the one-hot groups. (B,)"""
        gauss = 0.5 * ((x[:, self.scalar] - self.means(raw)) / log_sigma.exp()) ** 2 + log_sigma
        logits = self.logits(raw)  # (B, G, W)
        picked = (raw[:, self.pad] * x[:, self.pad] * self.mask).sum(dim=(1, 2))
        return gauss.sum(1) + torch.logsumexp(logits, dim=2).sum(1) - picked


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
