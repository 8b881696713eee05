"""DiffWave (Kong et al. 2021, "DiffWave: A Versatile Diffusion Model for Audio Synthesis"): a
diffusion model of raw waveforms with a non-causal dilated convolutional network.

The network predicts the noise eps in x_t (B, 1, T): a 1x1 input convolution, then `layers`
residual layers with dilations 1, 2, ..., 2^(cycle-1), repeated. A layer adds a projection of
the diffusion-step embedding (sinusoidal, then two swish layers) to its input, applies a
non-causal dilated convolution (kernel 3) into gated units tanh(a) * sigmoid(b) (the class
embedding, when conditional, is added before the gate) and a 1x1 convolution split into a
residual (x + r) / sqrt(2) and a skip output. The skips are summed, scaled by 1 / sqrt(layers),
and relu -> 1x1 -> relu -> 1x1 (zero-initialized) gives the noise estimate.

The forward process and the samplers are genlab.diffusion's (the schedules and the DDPM/DDIM
step functions the image `ddpm` family uses); this file only says what the network predicts.
Class-conditional models train with a "no label" class at rate `label_dropout`, which enables
classifier-free guidance at sampling (`--guidance-scale`).

Data: float waveforms in [-1, 1] (`data.audio.encoding=float`, the preset's setting); mu-law
tokens are decoded to waveforms first, so a run also trains on data read for wavenet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.data.audio import mulaw_decode
from genlab.diffusion import samplers
from genlab.diffusion.schedules import make_schedule
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel

CHUNK = 64
"""Clips per network call while sampling (bounds memory for large -n)."""


@dataclass
class Config:
    channels: int = 32
    """Residual channels of every layer."""
    layers: int = 20
    """Residual layers."""
    cycle: int = 10
    """Dilations 1, 2, ..., 2^(cycle-1), repeated over the layers."""
    step_embed: int = 128
    """Width of the diffusion-step embedding (sinusoidal, then two swish layers of 4x this)."""
    timesteps: int = 200
    """Diffusion steps T of the forward process."""
    schedule: Literal["linear", "cosine"] = "linear"
    """Noise schedule (genlab.diffusion.schedules)."""
    crop: int = 0
    """Samples per training example: a random crop of each clip (0 = the whole clip)."""
    conditional: bool = False
    """Class-conditional training (needs labelled data): `genlab sample RUN --class K`."""
    label_dropout: float = 0.1
    """Probability of training on the "no label" class (for classifier-free guidance)."""
    sampler: Literal["ddpm", "ddim"] = "ddim"
    """Default sampler (`--sampler`)."""
    sample_steps: int = 50
    """Default number of sampling steps, spread over the T timesteps (`--sample-steps`)."""
    eta: float = 0.0
    """Default DDIM stochasticity: 0 deterministic, 1 the ancestral variance (`--eta`)."""
    guidance_scale: float = 1.0
    """Default classifier-free guidance scale: 1 the conditional model, above 1 stronger."""

    def validate(self) -> None:
        for name in ("channels", "layers", "cycle", "step_embed"):
            if getattr(self, name) < 1:
                raise UsageError(f"model.{name} must be at least 1; got {getattr(self, name)}")
        if self.timesteps < 2:
            raise UsageError(f"model.timesteps must be at least 2; got {self.timesteps}")
        if not 1 <= self.sample_steps <= self.timesteps:
            raise UsageError(
                f"model.sample_steps must be between 1 and model.timesteps ({self.timesteps}); "
                f"got {self.sample_steps}"
            )
        if self.crop < 0:
            raise UsageError(f"model.crop must be 0 (whole clips) or positive; got {self.crop}")
        if not 0 <= self.label_dropout < 1:
            raise UsageError(f"model.label_dropout must be in [0, 1); got {self.label_dropout}")
        if self.eta < 0:
            raise UsageError(f"model.eta must be 0 or more; got {self.eta}")


@dataclass(frozen=True)
class SampleOptions:
    class_label: int | None = field(default=None, metadata={"flag": "--class", "metavar": "K"})
    """The class to generate (class-conditional runs); default: classes drawn uniformly."""
    seconds: float | None = field(default=None, metadata={"metavar": "S"})
    """Length of each sample in seconds (default: the data's clip length)."""
    sampler: Literal["ddpm", "ddim"] | None = None
    """Sampler: ancestral DDPM or DDIM (default: the run's model.sampler)."""
    sample_steps: int | None = field(default=None, metadata={"metavar": "N"})
    """Denoising steps, evenly spread over the T timesteps (default: model.sample_steps)."""
    eta: float | None = None
    """DDIM noise: 0 deterministic, 1 the ancestral variance (default: model.eta)."""
    guidance_scale: float | None = field(default=None, metadata={"metavar": "W"})
    """Classifier-free guidance: 1 conditional, 0 unconditional, above 1 stronger (default:
    model.guidance_scale)."""

    def validate(self) -> None:
        if self.seconds is not None and not self.seconds > 0:
            raise UsageError(f"--seconds must be positive; got {self.seconds}")


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer diffusion steps t (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / max(half - 1, 1))
    angles = t.float().unsqueeze(1) * freqs  # (B, half)
    return torch.cat([angles.sin(), angles.cos(), angles[:, : dim - 2 * half]], dim=1)


class Layer(nn.Module):
    """One residual layer: + step projection -> dilated conv (+ class) -> gate -> 1x1."""

    def __init__(self, channels: int, dilation: int, embed: int, num_labels: int) -> None:
        super().__init__()
        self.step = nn.Linear(embed, channels)
        self.conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.label = nn.Embedding(num_labels, 2 * channels) if num_labels else None
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(
        self, x: torch.Tensor, step: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T) -> (residual output (B, C, T), skip (B, C, T))."""
        z = self.conv(x + self.step(step).unsqueeze(-1))  # (B, 2C, T)
        if self.label is not None:
            z = z + self.label(labels).unsqueeze(-1)
        a, b = z.chunk(2, dim=1)
        res, skip = self.out(torch.tanh(a) * torch.sigmoid(b)).chunk(2, dim=1)
        return (x + res) / math.sqrt(2.0), skip


class DiffWave(GenerativeModel):
    family = "diffwave"
    description = "DiffWave: waveform diffusion, non-causal dilated convs, DDIM, guidance"
    Config = Config
    SampleOptions = SampleOptions
    tiny = (
        "model.channels=8",
        "model.layers=4",
        "model.cycle=2",
        "model.step_embed=16",
        "model.timesteps=50",
        "model.sample_steps=4",
        "model.conditional=true",
        "data.audio.encoding=float",
    )
    tiny_data = "audio"

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="audio", labels=cfg.conditional)
        c, e = cfg.channels, cfg.step_embed
        self.num_classes = info.num_classes if cfg.conditional else 0
        labels = self.num_classes + 1 if self.num_classes else 0  # + the "no label" class
        self.inp = nn.Conv1d(1, c, 1)
        self.step_mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.SiLU(), nn.Linear(4 * e, 4 * e))
        self.layers = nn.ModuleList(
            Layer(c, 2 ** (i % cfg.cycle), 4 * e, labels) for i in range(cfg.layers)
        )
        self.skip_out = nn.Conv1d(c, c, 1)
        self.out = nn.Conv1d(c, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.schedule = make_schedule(cfg.schedule, cfg.timesteps)

    def net(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Predicted noise (B, T) at noisy waveforms x_t (B, T) and steps t (B,)."""
        h = F.relu(self.inp(x_t.unsqueeze(1)))  # (B, C, T)
        step = F.silu(self.step_mlp(F.silu(step_embedding(t, self.cfg.step_embed).to(h.dtype))))
        skips = 0
        for layer in self.layers:
            h, skip = layer(h, step, labels)
            skips = skips + skip
        y = F.relu(self.skip_out(skips / math.sqrt(len(self.layers))))
        return self.out(y).squeeze(1)

    def waveform(self, x: torch.Tensor) -> torch.Tensor:
        """A batch's "x" as float waveforms (B, T): mu-law tokens are decoded."""
        if x.is_floating_point():
            return x
        return mulaw_decode(x.cpu(), self.info.record.levels).to(x.device)

    # training -------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = self.waveform(batch["x"])  # (B, T)
        b, crop = x0.shape[0], self.cfg.crop
        if self.training and 0 < crop < x0.shape[1]:  # one random window per clip
            start = torch.randint(0, x0.shape[1] - crop + 1, (b, 1), device=x0.device)
            x0 = x0.gather(1, start + torch.arange(crop, device=x0.device))
        t = torch.randint(0, self.cfg.timesteps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.add_noise(x0, noise, t)
        labels = None
        if self.num_classes:
            drop = torch.rand(b, device=x0.device) < self.cfg.label_dropout
            labels = torch.where(drop, self.num_classes, batch["y"])
        return {"loss": F.mse_loss(self.net(x_t, t, labels), noise)}

    # sampling -------------------------------------------------------------------------------
    def guided(self, labels: torch.Tensor | None, scale: float) -> samplers.Predict:
        """predict(x_t, t) -> (x_0, eps) under classifier-free guidance at `scale`."""

        def read(x: torch.Tensor, t: int, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x0 = self.schedule.to_x0_eps("eps", x, t, eps)[0].clamp(-1, 1)
            return x0, self.schedule.eps_from_x0(x, t, x0)

        return samplers.guided(self.net, read, labels, self.num_classes, scale)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        class_label: int | None = None,
        seconds: float | None = None,
        sampler: str | None = None,
        sample_steps: int | None = None,
        eta: float | None = None,
        guidance_scale: float | None = None,
    ) -> torch.Tensor:
        """n waveforms (n, T) in [-1, 1] (T = `seconds` at the data's rate, or the data's
        length) by `sampler` over `sample_steps` steps; conditional runs draw classes uniformly
        unless `class_label` is given."""
        cfg = self.cfg
        SampleOptions(seconds=seconds).validate()
        sampler, timesteps, eta = samplers.sampling_options(cfg, sampler, sample_steps, eta)
        if guidance_scale is not None and not self.num_classes:
            raise UsageError("--guidance-scale needs a class-conditional run")
        scale = cfg.guidance_scale if guidance_scale is None else guidance_scale
        labels = self.sample_labels(n, class_label, generator)
        length = int(self.info.shape[0])
        if seconds is not None:
            length = max(1, round(seconds * self.info.record.sample_rate))
        out = []
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            x_T = torch.randn((m, length), generator=generator, device=self.device)
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
            out.append(x0.clamp(-1, 1))
        return torch.cat(out)


def fsdd_preset(run):
    """The Free Spoken Digit Dataset at 8 kHz as 1-second float waveforms, conditioned on the
    digit: 20 layers of 32 channels (two cycles of dilations 1..512), sized for a CPU."""
    run.data.audio.seconds = 1.0
    run.data.audio.encoding = "float"
    run.model.conditional = True
    run.train.batch_size = 8
    run.train.lr = 2e-4
    run.train.warmup_steps = 100
    run.train.ema_decay = 0.999
    run.train.eval_every = 250
    run.train.eval_batches = 4
    run.train.steps = 3000
    return run


PRESETS = {"fsdd": fsdd_preset}
