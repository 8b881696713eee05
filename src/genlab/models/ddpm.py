"""Denoising diffusion probabilistic models (Ho et al. 2020) with DDIM sampling (Song et al.
2021), classifier-free guidance (Ho & Salimans 2022) and RePaint-style inpainting (Lugmayr et
al. 2022).

The pieces stay apart: the U-Net (`models/unet.py`) only predicts; the noise schedule
(`diffusion/schedules.py`) owns the forward process; the samplers (`diffusion/samplers.py`) are
pure step functions; this file says what the network's output means (`objective`), how it is
trained and how the pieces combine for sampling, inpainting and the likelihood bound.

Images are scaled from [0, 1] to [-1, 1] for the diffusion and back for the caller.

Training: t ~ U{0..T-1}, x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, and the mean
squared error between the network output and its target: eps, x_0 or v = sqrt(alpha_bar_t) eps
- sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022). Conditional models replace the label by a
"no label" class with probability `label_dropout`, so one network is both p(x|y) and p(x).

Likelihood: `nll` is the variational bound of Ho et al. (2020, eq. 5 and appendix) in nats,
L_T (prior) + sum_{t>=1} KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t)) + L_0, with the reverse
variances fixed to the posterior variances and L_0 a Gaussian decoder discretized to the
data's intensity levels, so it bounds the negative log-probability of the quantized pixels.
The sum over timesteps is either computed in full (every t once, as Ho et al.'s evaluation) or
estimated without bias from K uniformly drawn timesteps per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from genlab.data import DataInfo
from genlab.diffusion import inpainting, samplers
from genlab.diffusion.schedules import make_schedule
from genlab.distributions import discretized_gaussian_log_prob, randn_like
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel
from genlab.models.unet import UNet

CHUNK = 256
"""Images per network call when sampling or evaluating (bounds memory for large -n)."""


@dataclass
class Config:
    channels: int = 32
    """Base width of the U-Net (channels at full resolution)."""
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2])
    """Width multiplier per resolution level; the image is halved between levels."""
    res_blocks: int = 1
    """Residual blocks per level on the way down (one more on the way up)."""
    attention: list[int] = field(default_factory=lambda: [2])
    """Levels (0 = full resolution) with self-attention after each residual block; the middle
    block always has it. Default: the lowest resolution only (7x7 for 28x28 images)."""
    head_channels: int = 32
    """Channels per attention head."""
    norm_groups: int = 8
    """Groups of every group norm; must divide every level's width."""
    dropout: float = 0.0
    """Dropout inside the residual blocks."""
    timesteps: int = 1000
    """Diffusion steps T of the forward process."""
    schedule: Literal["linear", "cosine"] = "linear"
    """Noise schedule: Ho et al.'s linear betas, or Nichol & Dhariwal's cosine alpha_bar."""
    objective: Literal["eps", "x0", "v"] = "eps"
    """What the network predicts: the noise (Ho et al.), the clean image, or v (Salimans & Ho)."""
    clip_x0: bool = True
    """Clip predicted clean images to the data range [-1, 1] while sampling and in the bound."""
    conditional: bool = False
    """Class-conditional training (needs labelled data), enabling --class and guidance."""
    label_dropout: float = 0.1
    """Probability of training on the "no label" class (for classifier-free guidance)."""
    sampler: Literal["ddpm", "ddim"] = "ddim"
    """Default sampler: ancestral DDPM or DDIM (`genlab sample --sampler`)."""
    sample_steps: int = 50
    """Default number of sampling steps, evenly spread over the T timesteps (`--sample-steps`)."""
    eta: float = 0.0
    """Default DDIM stochasticity: 0 deterministic, 1 the ancestral variance (`--eta`)."""
    guidance_scale: float = 1.0
    """Default classifier-free guidance scale w: eps_u + w (eps_c - eps_u); 1 is the plain
    conditional model, 0 the unconditional one (`--guidance-scale`)."""
    nll_timesteps: int = 16
    """Timesteps per image drawn for the Monte-Carlo estimate of the variational bound in
    `genlab eval` (`--bound-timesteps`); 0 sums over all T timesteps."""

    def validate(self) -> None:
        if self.channels < 1 or not self.channel_mult or min(self.channel_mult) < 1:
            raise UsageError(
                "model.channels and every model.channel_mult entry must be positive; "
                f"got {self.channels}, {self.channel_mult}"
            )
        for w in (self.channels * m for m in self.channel_mult):
            if self.norm_groups < 1 or w % self.norm_groups:
                raise UsageError(
                    f"model.norm_groups={self.norm_groups} must divide every level's width "
                    f"(model.channels x model.channel_mult: {w})"
                )
        levels = len(self.channel_mult)
        if any(not 0 <= i < levels for i in self.attention):
            raise UsageError(
                f"model.attention lists levels 0..{levels - 1} (0 = full resolution); "
                f"got {self.attention}"
            )
        if self.res_blocks < 1 or self.head_channels < 1:
            raise UsageError("model.res_blocks and model.head_channels must be at least 1")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_dropout < 1:
            raise UsageError("model.dropout and model.label_dropout must be in [0, 1)")
        if self.timesteps < 2:
            raise UsageError(f"model.timesteps must be at least 2; got {self.timesteps}")
        if not 1 <= self.sample_steps <= self.timesteps:
            raise UsageError(
                f"model.sample_steps must be between 1 and model.timesteps ({self.timesteps}); "
                f"got {self.sample_steps}"
            )
        if self.eta < 0 or self.nll_timesteps < 0:
            raise UsageError("model.eta and model.nll_timesteps must be 0 or more")


@dataclass(frozen=True)
class SampleOptions:
    sampler: Literal["ddpm", "ddim"] | None = None
    """Sampler: ancestral DDPM or DDIM (default: the run's model.sampler)."""
    sample_steps: int | None = field(
        default=None, metadata={"aliases": ("--steps",), "metavar": "N"}
    )
    """Denoising steps, evenly spread over the T timesteps (default: model.sample_steps)."""
    eta: float | None = None
    """DDIM noise: 0 deterministic, 1 the ancestral variance (default: model.eta)."""
    class_label: int | None = field(default=None, metadata={"flag": "--class", "metavar": "K"})
    """The class to generate (class-conditional runs); default: classes drawn uniformly."""
    guidance_scale: float | None = field(default=None, metadata={"metavar": "W"})
    """Classifier-free guidance: 1 conditional, 0 unconditional, above 1 stronger (default:
    model.guidance_scale)."""


@dataclass(frozen=True)
class EvalOptions:
    bound_timesteps: int | None = field(default=None, metadata={"metavar": "K"})
    """Timesteps drawn per image for the Monte-Carlo estimate of the variational bound, or 0
    for the exact sum over all timesteps (default: model.nll_timesteps)."""

    def validate(self) -> None:
        if self.bound_timesteps is not None and self.bound_timesteps < 0:
            raise UsageError(
                f"--bound-timesteps must be 0 (all) or more; got {self.bound_timesteps}"
            )


class DDPM(GenerativeModel):
    family = "ddpm"
    description = (
        "diffusion (DDPM/DDIM): U-Net, eps/x0/v objectives, guidance, inpainting, bits/dim bound"
    )
    Config = Config
    SampleOptions = SampleOptions
    EvalOptions = EvalOptions
    tiny = (
        "model.channels=8",
        "model.channel_mult=[1,2]",
        "model.attention=[1]",
        "model.head_channels=8",
        "model.norm_groups=4",
        "model.timesteps=100",
        "model.sample_steps=5",
        "model.nll_timesteps=4",
    )

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="image", labels=cfg.conditional)
        self.num_classes = info.num_classes if cfg.conditional else 0
        self.net = UNet(
            info.shape[0],
            channels=cfg.channels,
            channel_mult=tuple(cfg.channel_mult),
            res_blocks=cfg.res_blocks,
            attention=tuple(cfg.attention),
            head_channels=cfg.head_channels,
            groups=cfg.norm_groups,
            dropout=cfg.dropout,
            num_classes=self.num_classes,
        )
        self.schedule = make_schedule(cfg.schedule, cfg.timesteps)

    # the network's output, read through the objective -------------------------------------
    def denoise(
        self, x_t: torch.Tensor, t: int | torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted x_0, predicted noise) at noisy images x_t (B, C, H, W) in [-1, 1] scale."""
        tt = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        return self._read(x_t, t, self.net(x_t, tt, labels))

    def _read(self, x_t, t, out) -> tuple[torch.Tensor, torch.Tensor]:
        x0, eps = self.schedule.to_x0_eps(self.cfg.objective, x_t, t, out)
        if self.cfg.clip_x0:  # keep x_0 in the data range; the noise follows from it
            x0 = x0.clamp(-1, 1)
            eps = self.schedule.eps_from_x0(x_t, t, x0)
        return x0, eps

    def guided(self, labels: torch.Tensor | None, scale: float) -> samplers.Predict:
        """predict(x_t, t) under classifier-free guidance at `scale` for `labels` (B,)
        (genlab.diffusion.samplers.guided)."""
        return samplers.guided(self.net, self._read, labels, self.num_classes, scale)

    # training -------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = batch["x"] * 2 - 1  # (B, C, H, W) in [-1, 1]
        b = x0.shape[0]
        t = torch.randint(0, self.cfg.timesteps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.add_noise(x0, noise, t)
        labels = None
        if self.num_classes:
            drop = torch.rand(b, device=x0.device) < self.cfg.label_dropout
            labels = torch.where(drop, self.num_classes, batch["y"])
        target = self.schedule.target(self.cfg.objective, x0, noise, t)
        return {"loss": F.mse_loss(self.net(x_t, t, labels), target)}

    # sampling -------------------------------------------------------------------------------
    def _options(self, sampler, sample_steps, eta, class_label, guidance_scale):
        cfg = self.cfg
        sampler, timesteps, eta = samplers.sampling_options(cfg, sampler, sample_steps, eta)
        if not self.num_classes and (class_label is not None or guidance_scale is not None):
            raise UsageError(
                "--class and --guidance-scale need a class-conditional run; train one with "
                "--set model.conditional=true on labelled data"
            )
        if class_label is not None and not 0 <= class_label < self.num_classes:
            raise UsageError(f"--class must be between 0 and {self.num_classes - 1}")
        scale = cfg.guidance_scale if guidance_scale is None else guidance_scale
        return sampler, timesteps, eta, scale

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        sample_steps: int | None = None,
        eta: float | None = None,
        class_label: int | None = None,
        guidance_scale: float | None = None,
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] by `sampler` (ddpm or ddim) over `sample_steps`
        timesteps.

        Conditional models draw labels uniformly unless `class_label` is given, and are guided
        with `guidance_scale`. Defaults come from the config (`model.sampler`, ...).
        """
        sampler, timesteps, eta, scale = self._options(
            sampler, sample_steps, eta, class_label, guidance_scale
        )
        labels = self.sample_labels(n, class_label, generator)
        out = []
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            x_T = torch.randn((m, *self.info.shape), generator=generator, device=self.device)
            lab = None if labels is None else labels[start : start + m]
            x0 = samplers.sample_loop(
                self.guided(lab, scale),
                self.schedule,
                x_T,
                timesteps,
                sampler=sampler,
                eta=eta,
                generator=generator,
            )
            out.append(((x0 + 1) / 2).clamp(0, 1))
        return torch.cat(out)

    @torch.no_grad()
    def inpaint(
        self,
        x: torch.Tensor,
        fill: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        rounds: int = 5,
        sampler: str | None = None,
        sample_steps: int | None = None,
        eta: float | None = None,
        class_label: int | None = None,
        guidance_scale: float | None = None,
    ) -> torch.Tensor:
        """Fill the pixels of images x (B, C, H, W) in [0, 1] where `fill` (broadcastable bool)
        is true, consistently with the rest; every other pixel is returned exactly as given.

        Each reverse step is repeated `rounds` times, re-noising in between (RePaint's
        resampling), so the generated region harmonizes with the known one.
        """
        if rounds < 1:
            raise UsageError(f"--resample-rounds must be at least 1; got {rounds}")
        sampler, timesteps, eta, scale = self._options(
            sampler, sample_steps, eta, class_label, guidance_scale
        )
        keep = ~fill.to(torch.bool).to(x.device)
        labels = self.sample_labels(len(x), class_label, generator)
        out = inpainting.inpaint_loop(
            self.guided(labels, scale),
            self.schedule,
            x * 2 - 1,
            keep,
            timesteps,
            sampler=sampler,
            eta=eta,
            rounds=rounds,
            generator=generator,
        )
        return torch.where(keep, x, ((out + 1) / 2).clamp(0, 1))

    # a deterministic latent space: DDIM with eta = 0 ----------------------------------------
    def prior(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of x_T ~ N(0, I), flattened to (n, C*H*W): the latent codes of `decode`."""
        return torch.randn((n, self.dims), generator=generator, device=self.device)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] that deterministic DDIM (eta 0, unconditional, the
        configured steps) maps the latent codes z = x_T (B, C*H*W) to."""
        ts = samplers.spaced_timesteps(self.cfg.timesteps, self.cfg.sample_steps)
        x_T = z.reshape(-1, *self.info.shape)
        x0 = samplers.sample_loop(self.guided(self._null(x_T), 0.0), self.schedule, x_T, ts)
        return ((x0 + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """DDIM inversion of images x (B, C, H, W) in [0, 1]: the latent codes (B, C*H*W) that
        `decode` maps (nearly) back to x."""
        ts = samplers.spaced_timesteps(self.cfg.timesteps, self.cfg.sample_steps)
        predict = self.guided(self._null(x), 0.0)
        return samplers.ddim_invert(predict, self.schedule, x * 2 - 1, ts).flatten(1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)): images in [0, 1] through the DDIM latent space."""
        return self.decode(self.encode(x))

    def _null(self, x: torch.Tensor) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        return torch.full((len(x),), self.num_classes, dtype=torch.long, device=x.device)

    # likelihood -----------------------------------------------------------------------------
    def nll_method(self, bound_timesteps: int | None = None) -> str:
        """How `nll` computes its number, for evaluation reports."""
        k = self.cfg.nll_timesteps if bound_timesteps is None else bound_timesteps
        if k == 0:
            return f"variational bound, full sum over all {self.cfg.timesteps} timesteps"
        return f"variational bound, unbiased Monte-Carlo estimate over {k} timesteps per image"

    @torch.no_grad()
    def nll(
        self,
        batch: dict[str, torch.Tensor],
        *,
        generator: torch.Generator | None = None,
        bound_timesteps: int | None = None,
    ) -> torch.Tensor:
        """The variational bound on -log p(x) in nats per image, (B,).

        `bound_timesteps` K (default `model.nll_timesteps`): 0 sums the KL terms of all
        timesteps 1..T-1; K > 0 estimates that sum as (T - 1) x the mean over K timesteps drawn
        uniformly per image. The prior and decoder terms are always exact. Conditional models
        are scored unconditionally (the "no label" class), as p(x).
        """
        k = self.cfg.nll_timesteps if bound_timesteps is None else bound_timesteps
        if k < 0:
            raise UsageError(f"--bound-timesteps must be 0 (all) or more; got {k}")
        x0 = batch["x"].to(self.device) * 2 - 1  # (B, C, H, W)
        b, T = len(x0), self.cfg.timesteps
        dev = x0.device
        if k == 0:  # every t in 1..T-1 for every image
            ts = torch.arange(1, T, device=dev).repeat_interleave(b)  # (B (T-1),) t-major
            idx = torch.arange(b, device=dev).repeat(T - 1)
        else:
            ts = torch.randint(1, T, (k * b,), generator=generator, device=dev)
            idx = torch.arange(b, device=dev).repeat(k)
        kl = torch.zeros(b, device=dev)
        for start in range(0, len(ts), CHUNK):
            i, t = idx[start : start + CHUNK], ts[start : start + CHUNK]
            kl.index_add_(0, i, self._kl_term(x0[i], t, generator))
        weight = 1.0 if k == 0 else (T - 1) / k
        return self._prior_term(x0) + weight * kl + self._decoder_term(x0, generator)

    def _kl_term(self, x0, t, generator) -> torch.Tensor:
        """KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) at one draw of x_t, in nats, (B,)."""
        x_t = self.schedule.add_noise(x0, randn_like(x0, generator), t)
        x0_pred, _ = self.denoise(x_t, t, self._null(x0))
        mean_q, var = self.schedule.posterior(x0, x_t, t)
        mean_p, _ = self.schedule.posterior(x0_pred, x_t, t)
        return ((mean_q - mean_p) ** 2 / (2 * var)).flatten(1).sum(1)

    def _prior_term(self, x0) -> torch.Tensor:
        """KL(q(x_T|x_0) || N(0, I)) in nats, (B,)."""
        a = self.schedule.alpha_bar(self.cfg.timesteps - 1)
        mean, var = a.sqrt() * x0, 1 - a
        return (0.5 * (mean**2 + var - 1 - var.log())).flatten(1).sum(1)

    def _decoder_term(self, x0, generator) -> torch.Tensor:
        """-log p(x_0 | x_1): Gaussian at the predicted x_0 integrated over each pixel's
        intensity bin (Ho et al. 2020, eq. 13), in nats, (B,)."""
        t = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
        x_t = self.schedule.add_noise(x0, randn_like(x0, generator), t)
        x0_pred, _ = self.denoise(x_t, t, self._null(x0))
        # the reverse variance at t = 0 is that of t = 1 (the posterior's is 0 there)
        _, var = self.schedule.posterior(x0[:1], x0[:1], torch.ones(1, device=x0.device))
        log_scale = 0.5 * var.log() - math.log(2)  # the scale in [0, 1] pixel units
        lp = discretized_gaussian_log_prob(
            (x0 + 1) / 2, (x0_pred + 1) / 2, log_scale.expand_as(x0), self.info.record.levels
        )
        return -lp.flatten(1).sum(1)


def mnist_preset(run):
    """28x28 MNIST on a CPU, the benchmark's configuration: a 0.63M-parameter U-Net (widths
    24-48-48 at 28, 14 and 7 pixels, attention at 7x7), about half the multiply-adds of a
    diffusers UNet2DModel (32, 64, 64), trained with AdamW at 1e-3 and EMA 0.995."""
    run.model.channels = 24
    run.model.channel_mult = [1, 2, 2]
    run.model.attention = [2]
    run.model.head_channels = 24
    run.train.batch_size = 64
    run.train.lr = 1e-3
    run.train.warmup_steps = 200
    run.train.ema_decay = 0.995
    run.train.eval_every = 1000
    run.train.eval_batches = 20
    run.train.steps = 5000
    return run


def digits_preset(run):
    """8x8 digits: two levels (8, 4), attention at 4x4, sized for a CPU."""
    run.model.channels = 32
    run.model.channel_mult = [1, 2]
    run.model.attention = [1]
    run.train.batch_size = 64
    run.train.lr = 1e-3
    run.train.warmup_steps = 100
    run.train.ema_decay = 0.995
    run.train.steps = 3000
    run.train.eval_every = 500
    return run


PRESETS = {"mnist": mnist_preset, "digits": digits_preset}
