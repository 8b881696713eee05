"""CTGAN (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN") over the codec's
mode-specific form of a CSV table.

Conditional vector: one one-hot block per categorical (or bool) column; a row's vector picks one
such column and one of its categories. Training-by-sampling: every slot of a batch picks a
column uniformly and a real row of the batch resampled so that the column's categories come at
their log-frequency (rare categories are seen more often than in the data); the vector says
that row's category. CTGAN draws real rows from the whole table this way; here the loop's
random batch is the pool, which is the same in expectation.

Generator: z (B, latent_dim) + vector -> residual blocks [Linear -> BatchNorm -> ReLU, output
concatenated to the input] x len(g_hidden) -> Linear (B, D) -> tanh on alphas, Gumbel-softmax
(temperature `tau`) on one-hot groups. Its loss: -D(fake) plus the cross-entropy between the
chosen column's generated logits and the vector's category (the generator must obey it).

Discriminator (PacGAN, Lin et al. 2018): `pac` rows with their vectors are judged together,
(B / pac, pac x (D + C)) -> [Linear -> LeakyReLU(0.2) -> Dropout(0.5)] x len(d_hidden) ->
Linear -> one score; WGAN-GP (Gulrajani et al. 2017): D minimizes D(fake) - D(real) +
gp_weight (|grad D(x_hat)| - 1)^2 on the packed interpolates.

The family owns `train_step` (discriminator then generator, each through the loop's helper);
`loss` is the discriminator's Wasserstein estimate D(fake) - D(real) on a batch, which ranks no
checkpoint (selection "last"). Sampling draws the vector's column uniformly and its category at
the category's frequency, as CTGAN does; `--where` conditions the vector on the first condition
and keeps the rows whose conditioned columns match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from genlab.data import DataInfo
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel, Selection, Updates
from genlab.models.tables import Layout, TableEvalOptions, WhereOption, sample_where, table_codec


@dataclass
class Config:
    latent_dim: int = 128
    """Size of the generator's input noise z ~ N(0, I)."""
    g_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """Widths of the generator's residual blocks."""
    d_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """Widths of the discriminator's hidden layers."""
    pac: int = 10
    """Rows the discriminator judges together (PacGAN); must divide train.batch_size."""
    gp_weight: float = 10.0
    """Weight of the WGAN-GP gradient penalty."""
    tau: float = 0.2
    """Temperature of the generator's Gumbel-softmax on one-hot groups while training."""
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    """Adam betas of both players (CTGAN's)."""
    weight_decay: float = 1e-6
    """Adam weight decay of both players (CTGAN's)."""

    def validate(self) -> None:
        if self.pac < 1 or self.latent_dim < 1:
            raise UsageError("model.pac and model.latent_dim must be at least 1")
        if min(self.g_hidden + self.d_hidden, default=1) < 1:
            raise UsageError("model.g_hidden and model.d_hidden widths must be positive")
        if self.tau <= 0:
            raise UsageError(f"model.tau must be positive; got {self.tau}")


class Residual(nn.Module):
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.relu(self.bn(self.fc(x))), x], dim=1)  # (B, i) -> (B, o + i)


class CTGAN(GenerativeModel):
    family = "ctgan"
    description = "CTGAN: conditional WGAN-GP over CSV tables with a PacGAN discriminator"
    Config = Config
    SampleOptions = WhereOption
    EvalOptions = TableEvalOptions
    selection: ClassVar[Selection] = Selection(mode="last")
    data_kinds = ("tabular",)
    defaults = (
        "data.tabular.codec=modes",
        "train.batch_size=100",
        "train.steps=3000",
        "train.schedule=constant",
        "train.grad_clip=0",
        "train.eval_every=500",
    )
    tiny = ("model.latent_dim=8", "model.g_hidden=[16]", "model.d_hidden=[16]", "model.pac=2")
    tiny_data = "wine"

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.codec = table_codec(info, self.family, "modes")
        self.spans = self.codec.spans
        self.layout = Layout(self.spans)
        self.discrete = [s for s in self.spans if s.discrete]
        groups = [self.layout.group_of[s.start] for s in self.discrete]
        self.register_buffer("group", torch.tensor(groups, dtype=torch.long), persistent=False)
        self.cond_dim = sum(s.width for s in self.discrete)
        offsets, start = [], 0
        for s in self.discrete:
            offsets.append(start)
            start += s.width
        self.offsets = offsets
        d = self.codec.width
        layers: list[nn.Module] = []
        width = cfg.latent_dim + self.cond_dim
        for h in cfg.g_hidden:
            layers.append(Residual(width, h))
            width += h
        layers.append(nn.Linear(width, d))
        self.generator = nn.Sequential(*layers)
        disc: list[nn.Module] = []
        width = cfg.pac * (d + self.cond_dim)
        for h in cfg.d_hidden:
            disc += [nn.Linear(width, h), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
            width = h
        disc.append(nn.Linear(width, 1))
        self.discriminator = nn.Sequential(*disc)
        # per discrete column: log-frequency / frequency of each category (resampling weights)
        # and the frequencies themselves (the sampling-time vector)
        freq = [
            torch.tensor(self.codec.columns[s.column]["counts"], dtype=torch.float64) + 1e-9
            for s in self.discrete
        ]
        self._freq = [f / f.sum() for f in freq]
        logf = [torch.log1p(f) for f in freq]
        self._ratio = [(lf / lf.sum()) / p for lf, p in zip(logf, self._freq)]

    # the conditional vector -------------------------------------------------------------------
    def _condition(
        self, x: torch.Tensor, u_col: torch.Tensor, u_row: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training-by-sampling from batch x (B, D) with uniforms u_col, u_row (B,): the real
        rows (B, D), their vectors (B, C), the chosen column per slot (B,) and its category."""
        b = x.shape[0]
        col = (u_col * len(self.discrete)).long().clamp_max(len(self.discrete) - 1)  # (B,)
        rows = torch.zeros(b, dtype=torch.long, device=x.device)
        cats = torch.zeros(b, dtype=torch.long, device=x.device)
        for k, s in enumerate(self.discrete):
            slots = col == k
            if not slots.any():
                continue
            own = x[:, s.start : s.start + s.width].argmax(1)  # (B,) each row's category
            weight = self._ratio[k].to(x.device)[own].float()
            cdf = weight.cumsum(0) / weight.sum()
            pick = torch.searchsorted(cdf, u_row[slots]).clamp_max(b - 1)
            rows[slots], cats[slots] = pick, own[pick]
        cond = torch.zeros(b, self.cond_dim, device=x.device)
        offsets = torch.tensor(self.offsets, device=x.device)
        cond[torch.arange(b, device=x.device), offsets[col] + cats] = 1.0
        return x[rows], cond, col, cats

    def _generate(self, z: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw logits (B, D) and activated rows (B, D) for noise and vectors."""
        raw = self.generator(torch.cat([z, cond], dim=1))
        return raw, self.layout.activate(raw, self.cfg.tau)

    def _score(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The discriminator's score per pack of `pac` rows: (B, D) -> (B / pac,)."""
        packed = torch.cat([x, cond], dim=1).reshape(x.shape[0] // self.cfg.pac, -1)
        return self.discriminator(packed).squeeze(1)

    def _obey(self, raw: torch.Tensor, col: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        """Cross-entropy between the chosen column's generated logits and the vector's category."""
        logp = self.layout.logits(raw).log_softmax(dim=2)  # (B, G, W)
        rows = torch.arange(raw.shape[0], device=raw.device)
        return -logp[rows, self.group[col], cats].mean()

    def _check_batch(self, b: int) -> None:
        if b % self.cfg.pac:
            raise UsageError(
                f"ctgan judges model.pac={self.cfg.pac} rows together: the batch ({b}) must be "
                "a multiple of it; change train.batch_size or model.pac"
            )

    def _inputs(self, x: torch.Tensor, noise: Any) -> tuple[torch.Tensor, ...]:
        b = x.shape[0]
        if self.discrete:
            real, cond, col, cats = self._condition(x, noise(b), noise(b))
        else:
            real, cond = x, x.new_zeros(b, 0)
            col = cats = torch.zeros(b, dtype=torch.long, device=x.device)
        return real, cond, col, cats

    # contract ---------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The discriminator's Wasserstein estimate D(fake) - D(real) on the batch (no penalty)."""
        x = batch["x"]
        pac = self.cfg.pac
        x = x.repeat(-(-pac // x.shape[0]), 1) if x.shape[0] < pac else x
        x = x[: x.shape[0] - x.shape[0] % pac]  # whole packs (a last partial batch is cut)
        real, cond, _, _ = self._inputs(x, lambda n: torch.rand(n, device=x.device))
        z = torch.randn(x.shape[0], self.cfg.latent_dim, device=x.device)
        fake = self._generate(z, cond)[1].detach()
        return {"loss": self._score(fake, cond).mean() - self._score(real, cond).mean()}

    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        kw = {"betas": tuple(c.betas), "weight_decay": c.weight_decay}
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=c.g_lr, **kw),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=c.d_lr, **kw),
        }

    def train_step(
        self, batch: dict[str, torch.Tensor], helper: Updates, step: int
    ) -> dict[str, torch.Tensor]:
        """One discriminator update (WGAN-GP), then one generator update, on one batch."""
        x = batch["x"]
        b = x.shape[0]
        self._check_batch(b)
        real, cond, col, cats = self._inputs(x, lambda n: helper.rand(n, device=x.device))
        z = helper.randn(b, self.cfg.latent_dim, device=x.device)
        # 1. discriminator
        fake = self._generate(z, cond)[1].detach()
        w = self._score(fake, cond).mean() - self._score(real, cond).mean()
        eps = helper.rand(b // self.cfg.pac, 1, device=x.device)
        eps = eps.repeat_interleave(self.cfg.pac, 0)  # one mixing weight per pack
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self._score(mixed, cond).sum(), mixed, create_graph=True)
        packed = torch.cat([grad, torch.zeros_like(cond)], 1).reshape(b // self.cfg.pac, -1)
        gp = (packed.norm(dim=1) - 1).pow(2).mean()
        helper.update("discriminator", w + self.cfg.gp_weight * gp)
        # 2. generator
        z = helper.randn(b, self.cfg.latent_dim, device=x.device)
        self.discriminator.requires_grad_(False)
        try:
            raw, fake = self._generate(z, cond)
            obey = self._obey(raw, col, cats) if self.discrete else raw.new_zeros(())
            g_loss = -self._score(fake, cond).mean() + obey
            helper.update("generator", g_loss)
        finally:
            self.discriminator.requires_grad_(True)
        return {"loss": w.detach(), "gp": gp.detach(), "g_loss": g_loss.detach(), "obey": obey}

    # sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _draw(
        self, n: int, conditions: dict[int, str], generator: torch.Generator | None
    ) -> torch.Tensor:
        cond = torch.zeros(n, self.cond_dim, device=self.device)
        if self.discrete:
            first = next(iter(conditions), None)
            ks = [k for k, s in enumerate(self.discrete) if s.column == first]
            if ks:  # the vector asks for the first condition's category in every row
                k = ks[0]
                cat = self.codec.columns[first]["categories"].index(conditions[first])
                cond[:, self.offsets[k] + cat] = 1.0
            else:  # a column drawn uniformly, its category at its frequency (CTGAN's sampling)
                col = torch.randint(
                    len(self.discrete), (n,), generator=generator, device=self.device
                )
                for k in range(len(self.discrete)):
                    slots = (col == k).nonzero()[:, 0]
                    if len(slots):
                        p = self._freq[k].float().to(self.device)
                        cats = torch.multinomial(p, len(slots), True, generator=generator)
                        cond[slots, self.offsets[k] + cats] = 1.0
        z = torch.randn((n, self.cfg.latent_dim), generator=generator, device=self.device)
        raw = self.generator(torch.cat([z, cond], dim=1))
        return self.layout.assemble(self.layout.means(raw), self.layout.one_hot(raw, generator))

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, where: str = ""
    ) -> torch.Tensor:
        """n rows in the codec's modes form (the tabular writer decodes them)."""
        return sample_where(lambda k, c: self._draw(k, c, generator), n, where, self.codec)


PRESETS: dict[str, Any] = {}
