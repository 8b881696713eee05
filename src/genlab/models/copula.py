"""Gaussian copula: the no-network baseline of synthetic tables (as SDV's GaussianCopula).

Each column is turned into a standard normal score by its own training distribution (the
codec's "gaussian" form: the empirical CDF of a numeric column, the frequency interval of a
category), so the marginals are exact by construction; the copula is the correlation matrix R
of those scores. Sampling draws z ~ N(0, R) and decodes every column through its marginal.

Fitting is closed-form: `train_step` adds the batch's z z^T to running sums (buffers, so that a
checkpoint holds them) and sets R to their correlation; one epoch fits it (the default). No
optimizer steps: the loop's optimizer entry only carries the schedule. `loss` is the negative
log copula density, -log c(z) = 1/2 log det R + 1/2 z^T (R^-1 - I) z, in nats per row: 0 for
independent columns, lower as the fitted dependence explains more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genlab.data import DataInfo
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel, Updates
from genlab.models.tables import TableEvalOptions, WhereOption, sample_where, table_codec


@dataclass
class Config:
    shrinkage: float = 1e-3
    """Added to R's diagonal before renormalizing: keeps R invertible for constant or
    duplicated columns."""

    def validate(self) -> None:
        if not 0 <= self.shrinkage < 1:
            raise UsageError(f"model.shrinkage must be in [0, 1); got {self.shrinkage}")


class Copula(GenerativeModel):
    family = "copula"
    description = "Gaussian copula over the columns of a CSV table: no network, fits in seconds"
    Config = Config
    SampleOptions = WhereOption
    EvalOptions = TableEvalOptions
    data_kinds = ("tabular",)
    defaults = ("data.tabular.codec=gaussian", "train.epochs=1", "train.eval_every=1000")
    tiny = ("model.shrinkage=0.001",)
    tiny_data = "wine"

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.codec = table_codec(info, self.family, "gaussian")
        d = self.codec.width
        self.chol = nn.Parameter(torch.eye(d))  # the Cholesky factor of R, lower triangle
        self.register_buffer("sum_zz", torch.zeros(d, d, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def _factor(self) -> torch.Tensor:
        return torch.tril(self.chol)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The negative log copula density of the batch's rows, mean over rows."""
        z = batch["x"].to(self.chol.dtype)  # (B, D)
        factor = self._factor()
        w = torch.linalg.solve_triangular(factor, z.T, upper=False)  # (D, B): L^-1 z
        logdet = 2 * factor.diagonal().abs().clamp_min(1e-12).log().sum()
        density = 0.5 * logdet + 0.5 * (w.pow(2).sum(0) - z.pow(2).sum(1))
        return {"loss": density.mean()}

    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        """No gradient steps (the fit is closed-form); the entry carries the loop's schedule."""
        return {"copula": torch.optim.SGD([self.chol], lr=train_cfg.lr)}

    @torch.no_grad()
    def train_step(
        self, batch: dict[str, torch.Tensor], helper: Updates, step: int
    ) -> dict[str, torch.Tensor]:
        """Add the batch to the running sums and refit R from them."""
        z = batch["x"].double()
        self.sum_zz += z.T @ z
        self.count += z.shape[0]
        cov = self.sum_zz / self.count + self.cfg.shrinkage * torch.eye(
            z.shape[1], dtype=z.dtype, device=z.device
        )
        scale = cov.diagonal().sqrt()
        corr = cov / scale[:, None] / scale[None, :]
        self.chol.copy_(torch.linalg.cholesky(corr).to(self.chol.dtype))
        return {"loss": self.loss(batch)["loss"]}

    @torch.no_grad()
    def _draw(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        factor = self._factor()
        eps = torch.randn((n, factor.shape[0]), generator=generator, device=self.device)
        z = eps @ factor.T  # (n, D) ~ N(0, L L^T)
        return z / (factor.pow(2).sum(1).sqrt() + 1e-12)  # unit variances: R's diagonal

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, where: str = ""
    ) -> torch.Tensor:
        """n rows in the codec's gaussian form (the tabular writer decodes them)."""
        return sample_where(lambda k, _: self._draw(k, generator), n, where, self.codec)


PRESETS: dict[str, Any] = {}
