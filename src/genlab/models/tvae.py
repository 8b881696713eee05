"""TVAE (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN"): a VAE over the codec's
mode-specific form of a CSV table.

Encoder: encoded row (B, D) -> [Linear -> ReLU] x len(hidden) -> mean and log-variance of a
latent (B, latent_dim). Decoder: latent -> [Linear -> ReLU] x len(hidden) -> raw (B, D): a tanh
mean per alpha with a learned per-column scale sigma (kept in [0.01, 1]), logits per one-hot
group (the modes of a numeric column, the categories of a categorical one).

Loss per row: `loss_factor` x the reconstruction's negative log-likelihood (Gaussian on alphas,
cross-entropy on one-hot groups) + KL(q(z|x) || N(0, I)), mean over the batch; the reported
"loss" is that mean, "recon" and "kl" its parts. Sampling decodes z ~ N(0, I): alphas
tanh(mean) + sigma noise, one category per group drawn from its softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from genlab.data import DataInfo
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel
from genlab.models.layers import mlp_stack
from genlab.models.tables import (
    Layout,
    TableEvalOptions,
    WhereOption,
    n_scalars,
    sample_where,
    table_codec,
)


@dataclass
class Config:
    latent_dim: int = 128
    """Size of the latent z."""
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    """Widths of the encoder's hidden layers (the decoder mirrors them)."""
    loss_factor: float = 2.0
    """Weight of the reconstruction term against the KL term (TVAE's default 2)."""

    def validate(self) -> None:
        if self.latent_dim < 1 or any(h < 1 for h in self.hidden):
            raise UsageError("model.latent_dim and model.hidden widths must be positive")
        if self.loss_factor <= 0:
            raise UsageError(f"model.loss_factor must be positive; got {self.loss_factor}")


class TVAE(GenerativeModel):
    family = "tvae"
    description = "TVAE: a VAE over CSV tables (mode-specific normalisation); synthetic rows"
    Config = Config
    SampleOptions = WhereOption
    EvalOptions = TableEvalOptions
    data_kinds = ("tabular",)
    defaults = (
        "data.tabular.codec=modes",
        "train.batch_size=128",
        "train.steps=2000",
        "train.weight_decay=1e-5",
        "train.schedule=constant",  # TVAE's constant rate, no clipping
        "train.grad_clip=0",
        "train.eval_every=500",
    )
    tiny = ("model.latent_dim=8", "model.hidden=[32]")
    tiny_data = "wine"

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.codec = table_codec(info, self.family, "modes")
        self.spans = self.codec.spans
        self.layout = Layout(self.spans)
        d = self.codec.width
        self.encoder = nn.Sequential(mlp_stack([d, *cfg.hidden], "relu"), nn.ReLU())
        self.to_stats = nn.Linear(cfg.hidden[-1], 2 * cfg.latent_dim)
        self.decoder = mlp_stack([cfg.latent_dim, *reversed(cfg.hidden), d], "relu")
        self.log_sigma = nn.Parameter(torch.full((n_scalars(self.spans),), math.log(0.1)))

    def _sigma_log(self) -> torch.Tensor:
        return self.log_sigma.clamp(math.log(0.01), 0.0)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]  # (B, D)
        mean, log_var = self.to_stats(self.encoder(x)).chunk(2, dim=1)  # (B, latent) each
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        recon = self.layout.reconstruction(self.decoder(z), x, self._sigma_log())  # (B,)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1)  # (B,)
        loss = (self.cfg.loss_factor * recon + kl).mean()
        return {"loss": loss, "recon": recon.mean().detach(), "kl": kl.mean().detach()}

    @torch.no_grad()
    def _draw(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        z = torch.randn((n, self.cfg.latent_dim), generator=generator, device=self.device)
        raw = self.decoder(z)  # (n, D)
        noise = torch.randn((n, len(self.log_sigma)), generator=generator, device=self.device)
        alphas = (self.layout.means(raw) + self._sigma_log().exp() * noise).clamp(-1, 1)
        return self.layout.assemble(alphas, self.layout.one_hot(raw, generator))

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, where: str = ""
    ) -> torch.Tensor:
        """n rows in the codec's modes form (the tabular writer decodes them)."""
        return sample_where(lambda k, _: self._draw(k, generator), n, where, self.codec)


PRESETS: dict[str, Any] = {}
