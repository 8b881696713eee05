"""Convolutional variational autoencoder (Kingma & Welling 2014), with beta-VAE weighting.

Encoder: [Conv 3x3 stride 2 -> ReLU] per entry of `channels` -> Linear -> (mu, log variance).
Decoder: Linear -> [ConvTranspose 4x4 stride 2 -> ReLU] mirrored -> per-pixel likelihood.
With `model.decoder=pixelcnn` the deconvolutions produce feature maps instead, and a PixelCNN
over the image, conditioned at every pixel on those maps, gives p(x|z) = prod_i
p(x_i | x_<i, z) (the PixelVAE of Gulrajani et al. 2017, with one latent level): the latent
keeps the global structure, the PixelCNN the local detail the factorized decoder blurs. The
PixelCNN is a few gated layers (`model.pixel_arch=gated`) or PixelCNN++'s multi-resolution
network (`pp`, genlab.models.pixelcnn's PPNet, its blocks reading the maps at each resolution).

Likelihoods (`auto`, the default, picks bernoulli for nearly binary data, else gaussian):
- `bernoulli`: pixels are binarized (dynamically, a fresh Bernoulli draw per pass, the standard
  protocol for binarized-MNIST likelihoods; or by a 0.5 threshold) and modelled as Bernoulli.
- `gaussian`: a discretized Gaussian over the data's intensity levels (e.g. 256), so the
  likelihood is a true probability of the quantized pixels and bits/dim compare with other
  families on the same data.

Objectives: the ELBO (`elbo`, with the beta weighting), or the importance-weighted bound of
Burda et al. (`iwae`) over `model.train_samples` draws of q(z|x), which tightens the bound the
network is trained on at K times the decoder cost per step.

`nll` is the importance-weighted estimate of Burda et al. (2016):
log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K, z_k ~ q(z|x), which
is a lower bound of log p(x) that tightens as K grows (so the NLL it gives is an upper bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.distributions import auto_pixel_model, binarize, discretized_gaussian_log_prob
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel
from genlab.models.pixelcnn import Config as PixelConfig
from genlab.models.pixelcnn import GatedLayer, PPNet


@dataclass
class Config:
    latent_dim: int = 16
    """Size of the latent code z."""
    channels: list[int] = field(default_factory=lambda: [32, 64])
    """Channels of the encoder's stride-2 convolutions (the decoder mirrors them)."""
    hidden: int = 256
    """Width of the fully connected layer between the convolutions and the latent code."""
    beta: float = 1.0
    """Weight of the KL term in the training loss (beta-VAE, Higgins et al. 2017); 1 = the ELBO."""
    likelihood: Literal["auto", "bernoulli", "gaussian"] = "auto"
    """Pixel model: Bernoulli on binarized data, or a Gaussian discretized to the data's levels;
    auto: bernoulli for nearly binary data (e.g. MNIST), else gaussian (grey or colour images;
    genlab.distributions.nearly_binary). The run's config records the choice."""
    binarize: Literal["dynamic", "threshold"] = "dynamic"
    """How `bernoulli` binarizes: a fresh random draw each pass, or pixel > 0.5."""
    iw_samples: int = 100
    """Default number of importance samples K for the NLL estimate (`genlab eval --iw-samples`)."""
    objective: Literal["elbo", "iwae"] = "elbo"
    """Training objective: the (beta-weighted) ELBO, or the importance-weighted bound (IWAE,
    Burda et al. 2016) over `train_samples` draws of q(z|x)."""
    train_samples: int = 5
    """K, the draws of q(z|x) per example for the `iwae` objective (K = 1 is a one-sample
    Monte Carlo ELBO)."""
    free_bits: float = 0.0
    """Training only, `elbo` objective: each latent dimension's KL (averaged over the batch)
    costs at least this many nats, so a strong decoder gains nothing by leaving z unused
    (the "free bits" of Kingma et al. 2016); 0 = off. Reported ELBOs and NLLs stay exact."""
    decoder: Literal["deconv", "pixelcnn"] = "deconv"
    """p(x|z): `deconv`, independent pixels from the transposed convolutions; `pixelcnn`, a
    PixelCNN (`pixel_arch`) over the image conditioned on their feature maps (bernoulli
    likelihood; sampling then draws the pixels one by one)."""
    pixel_arch: Literal["gated", "pp"] = "gated"
    """pixelcnn decoder: `gated`, `pixel_layers` gated layers at full resolution; `pp`,
    PixelCNN++'s network at 3 resolutions with `pixel_resnets` residual blocks each way."""
    pixel_layers: int = 3
    """pixelcnn decoder, gated: gated layers (the first one masked type A, 7x7; then 3x3)."""
    pixel_resnets: int = 2
    """pixelcnn decoder, pp: gated residual blocks per resolution, down and again up."""
    pixel_channels: int = 32
    """pixelcnn decoder: channels of each gated layer (pp: of each residual block)."""
    pixel_features: int = 16
    """pixelcnn decoder: feature maps the deconvolutions produce from z for the PixelCNN."""

    def validate(self) -> None:
        if self.latent_dim < 1 or not self.channels or min(self.channels) < 1 or self.hidden < 1:
            raise UsageError(
                "model.latent_dim, model.channels (each entry) and model.hidden must be positive; "
                f"got {self.latent_dim}, {self.channels}, {self.hidden}"
            )
        if self.beta < 0:
            raise UsageError(f"model.beta must be 0 or more; got {self.beta}")
        if self.iw_samples < 1:
            raise UsageError(f"model.iw_samples must be at least 1; got {self.iw_samples}")
        if self.train_samples < 1:
            raise UsageError(f"model.train_samples must be at least 1; got {self.train_samples}")
        pixel = (self.pixel_layers, self.pixel_resnets, self.pixel_channels, self.pixel_features)
        if min(pixel) < 1:
            raise UsageError(
                "model.pixel_layers, model.pixel_resnets, model.pixel_channels and "
                f"model.pixel_features must be positive; got {', '.join(map(str, pixel))}"
            )
        if self.free_bits < 0:
            raise UsageError(f"model.free_bits must be 0 or more; got {self.free_bits}")
        if self.objective == "iwae" and self.free_bits:
            raise UsageError(
                "model.free_bits floors the ELBO's KL term and has no meaning for "
                "model.objective=iwae; set model.free_bits=0 or use model.objective=elbo"
            )
        if self.objective == "iwae" and self.beta != 1:
            raise UsageError(
                "model.beta weights the ELBO's KL term and has no meaning for "
                "model.objective=iwae; leave model.beta at 1 or use model.objective=elbo"
            )


@dataclass(frozen=True)
class SampleOptions:
    temperature: float = 1.0
    """Scale of the latent noise, z ~ N(0, temperature^2 I): below 1 gives cleaner, less
    varied images."""

    def validate(self) -> None:
        if self.temperature <= 0:
            raise UsageError(f"--temperature must be positive; got {self.temperature}")


@dataclass(frozen=True)
class EvalOptions:
    iw_samples: int | None = None
    """Importance samples per example for the likelihood estimate (default: the run's
    model.iw_samples); more samples give a tighter bound."""

    def validate(self) -> None:
        if self.iw_samples is not None and self.iw_samples < 1:
            raise UsageError(f"--iw-samples must be at least 1; got {self.iw_samples}")


class PixelDecoder(nn.Module):
    """Logits of p(x_i | x_<i, z) (B, C, H, W): gated PixelCNN layers over the observed image
    (genlab.models.pixelcnn's GatedLayer), each gate biased at every pixel by a 1x1 map of the
    decoder's features of z (the location-dependent conditioning of van den Oord et al. 2016)."""

    def __init__(self, c: int, features: int, channels: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            GatedLayer(
                c if i == 0 else channels,
                channels,
                7 if i == 0 else 3,
                "A" if i == 0 else "B",
                classes=0,
            )  # fmt: skip
            for i in range(layers)
        )
        self.cond = nn.ModuleList(nn.Conv2d(features, 4 * channels, 1) for _ in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, c, 1))

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """x (B, C, R, W): the image's first R rows; features: the whole image's (B, F, H, W)."""
        features = features[..., : x.shape[-2], : x.shape[-1]]
        v = h = x * 2 - 1
        for layer, to_cond in zip(self.layers, self.cond, strict=True):
            cond = tuple(to_cond(features).chunk(2, dim=1))
            v, to_h = layer.vertical(v, cond)
            h = layer.horizontal(h, to_h, cond)
        return self.head(h)


class PPDecoder(nn.Module):
    """Logits of p(x_i | x_<i, z) (B, C, H, W) from PixelCNN++'s network (PPNet), each residual
    block's gate biased by a 1x1 map of the decoder's features of z at its resolution."""

    def __init__(self, c: int, features: int, channels: int, resnets: int) -> None:
        super().__init__()
        cfg = PixelConfig(arch="pp", channels=channels, resnets=resnets)
        self.net = PPNet(c, cfg, classes=0, out=c, features=features)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """x (B, C, R, W): the image's first R rows; features: the whole image's (B, F, H, W)."""
        return self.net(x, None, features)


class VAE(GenerativeModel):
    family = "vae"
    description = (
        "convolutional variational autoencoder (beta-VAE); ELBO and importance-weighted NLL"
    )
    Config = Config
    SampleOptions = SampleOptions
    one_pass_decode = True
    EvalOptions = EvalOptions
    # bernoulli pinned: the golden runs (tests/golden) were recorded with it, before "auto"
    tiny = (
        "model.channels=[8,16]",
        "model.hidden=32",
        "model.latent_dim=4",
        "model.likelihood=bernoulli",
    )

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="image")
        cfg.likelihood, why = auto_pixel_model(
            info, "likelihood", cfg.likelihood, binary="bernoulli", discrete="gaussian"
        )
        self.choices = [why] if why else []
        c, h, w = info.shape
        self.out_channels = c if cfg.likelihood == "bernoulli" else 2 * c
        self.pixel = None
        if cfg.decoder == "pixelcnn":
            if cfg.likelihood != "bernoulli":
                raise UsageError(
                    "model.decoder=pixelcnn models binarized pixels: set "
                    "model.likelihood=bernoulli (or use model.decoder=deconv)"
                )
            self.pixel = (
                PixelDecoder(c, cfg.pixel_features, cfg.pixel_channels, cfg.pixel_layers)
                if cfg.pixel_arch == "gated"
                else PPDecoder(c, cfg.pixel_features, cfg.pixel_channels, cfg.pixel_resnets)
            )
            self.out_channels = cfg.pixel_features
        self.one_pass_decode = self.pixel is None  # pixel by pixel: not exportable
        enc: list[nn.Module] = []
        for ch in cfg.channels:
            enc += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.ReLU()]
            c, h, w = ch, (h + 1) // 2, (w + 1) // 2
        self.encoder = nn.Sequential(
            *enc, nn.Flatten(), nn.Linear(c * h * w, cfg.hidden), nn.ReLU()
        )
        self.to_latent = nn.Linear(cfg.hidden, 2 * cfg.latent_dim)
        self.bottom = (c, h, w)
        self.from_latent = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, c * h * w),
            nn.ReLU(),
        )
        dec: list[nn.Module] = []
        outs = [*reversed(cfg.channels[:-1]), self.out_channels]
        for i, ch in enumerate(outs):
            dec.append(nn.ConvTranspose2d(c, ch, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                dec.append(nn.ReLU())
            c = ch
        self.decoder = nn.Sequential(*dec)

    # the two halves ---------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x), each (B, latent_dim)."""
        mu, logvar = self.to_latent(self.encoder(x * 2 - 1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12, 8)

    def decoder_maps(self, z: torch.Tensor) -> torch.Tensor:
        """The transposed convolutions' output (B, out_channels, H, W) for latents z."""
        c, h, w = self.bottom
        out = self.decoder(self.from_latent(z).view(-1, c, h, w))
        _, height, width = self.info.shape
        return out[:, :, :height, :width]  # crop the up-sampling's overshoot

    def decoder_output(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Raw decoder output (B, C or 2C, H, W): logits, or mean and log-scale; with the
        pixelcnn decoder, each pixel's logit given z and the pixels of observed x before it."""
        maps = self.decoder_maps(z)
        if self.pixel is None:
            return maps
        if x is None:
            raise ValueError("the pixelcnn decoder's output needs the observed image x")
        return self.pixel(x, maps)

    def log_likelihood(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over dimensions, (B,), for decoder output `out`."""
        if self.cfg.likelihood == "bernoulli":
            lp = -F.binary_cross_entropy_with_logits(out, x, reduction="none")
        else:
            mean, log_scale = out.chunk(2, dim=1)
            lp = discretized_gaussian_log_prob(
                x, torch.sigmoid(mean), log_scale.clamp(-7, 2), self.info.record.levels
            )
        return lp.flatten(1).sum(1)

    def observe(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The data as the likelihood sees it: binarized for `bernoulli`, as given otherwise."""
        if self.cfg.likelihood != "bernoulli":
            return x
        return binarize(x, self.cfg.binarize, generator)

    # contract ---------------------------------------------------------------------------------
    def _elbo_parts(
        self, x: torch.Tensor, generator: torch.Generator | None = None, per_dim: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(x|z) at one draw z ~ q(z|x), (B,), and KL(q(z|x) || p(z)), (B,) or per
        latent dimension (B, D)."""
        mu, logvar = self.posterior(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = self.log_likelihood(self.decoder_output(z, x), x)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
        return recon, (kl if per_dim else kl.sum(1))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.observe(batch["x"])
        if self.cfg.objective == "iwae":
            k = self.cfg.train_samples
            bound = torch.logsumexp(self.log_weights(x, k), dim=0) - math.log(k)
            return {"loss": -bound.mean()}
        recon, kl_dims = self._elbo_parts(x, per_dim=True)
        kl = kl_dims.sum(1)
        if self.cfg.free_bits > 0 and self.training:
            penalty = kl_dims.mean(0).clamp(min=self.cfg.free_bits).sum()
        else:
            penalty = kl.mean()
        loss = -recon.mean() + self.cfg.beta * penalty
        return {"loss": loss, "recon": -recon.mean(), "kl": kl.mean()}

    def elbo(self, batch: dict[str, torch.Tensor], *, generator=None) -> torch.Tensor:
        """Per-example evidence lower bound in nats, (B,) (beta is not applied)."""
        x = self.observe(batch["x"], generator)
        recon, kl = self._elbo_parts(x, generator)
        return recon - kl

    def log_weights(
        self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """log p(x|z_k) + log p(z_k) - log q(z_k|x) for K draws z_k ~ q(z|x): (K, B), for
        observed (already binarized) x."""
        mu, logvar = self.posterior(x)
        std = torch.exp(0.5 * logvar)
        b, d = mu.shape
        # draws per decoder pass: about 4,096 images at a time, 512 through a PixelCNN decoder,
        # whose activations are many times larger
        chunk = max(1, (4096 if self.pixel is None else 512) // b)
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.randn((m, b, d), generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + std * eps  # (m, B, d)
            xs = x.unsqueeze(0).expand(m, *x.shape).reshape(m * b, *x.shape[1:])
            out = self.decoder_output(z.reshape(m * b, d), xs)
            log_px = self.log_likelihood(out, xs).view(m, b)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar).sum(-1)
            log_w.append(log_px + log_pz - log_qz)
        return torch.cat(log_w)

    def nll(
        self, batch: dict[str, torch.Tensor], *, generator=None, iw_samples: int | None = None
    ) -> torch.Tensor:
        """Importance-weighted NLL estimate in nats per example, (B,), from K samples of q(z|x)."""
        k = iw_samples or self.cfg.iw_samples
        x = self.observe(batch["x"], generator)
        return -(torch.logsumexp(self.log_weights(x, k, generator), dim=0) - math.log(k))

    def nll_method(self, iw_samples: int | None = None) -> str:
        """How `nll` computes its number, for evaluation reports."""
        k = iw_samples or self.cfg.iw_samples
        return f"importance-weighted bound (Burda et al. 2016) with {k} samples of q(z|x)"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means (B, latent_dim) of images x in [0, 1]."""
        return self.posterior(x)[0]

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Features for probes and transfer learning: the posterior means, as `encode`."""
        return self.encode(x)

    def decode(self, z: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean images (B, C, H, W) in [0, 1] for latent codes z; with the pixelcnn decoder,
        binary images drawn pixel by pixel from p(x|z) (with `generator`)."""
        if self.pixel is not None:
            return self._draw_pixels(self.decoder_maps(z), generator)
        out = self.decoder_output(z)
        if self.cfg.likelihood == "bernoulli":
            return torch.sigmoid(out)
        return torch.sigmoid(out.chunk(2, dim=1)[0])

    def _draw_pixels(self, maps: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Binary images drawn in raster order from the pixelcnn decoder given its maps; row
        i's logits need only rows <= i, so each pass runs on the rows drawn so far."""
        b, _, height, width = maps.shape
        x = torch.zeros((b, self.info.shape[0], height, width), device=maps.device)
        for i in range(height):
            for j in range(width):
                logits = self.pixel(x[:, :, : i + 1], maps)[:, :, i, j]
                u = torch.rand(logits.shape, generator=generator, device=maps.device)
                x[:, :, i, j] = (u < torch.sigmoid(logits.float())).to(x.dtype)
        return x

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded posterior means of images x: (B, C, H, W) in [0, 1]; with the pixelcnn
        decoder, each pixel's probability given the posterior mean and the pixels before it,
        binarized at 0.5 (one deterministic pass, no drawing)."""
        z = self.encode(x)
        if self.pixel is None:
            return self.decode(z)
        return torch.sigmoid(self.decoder_output(z, binarize(x, "threshold", None)))

    def prior(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latent codes (n, latent_dim) drawn from the prior N(0, I)."""
        return torch.randn((n, self.cfg.latent_dim), generator=generator, device=self.device)

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1]: decoder means at z ~ N(0, temperature^2 I)."""
        if temperature <= 0:
            raise UsageError(f"--temperature must be positive; got {temperature}")
        return self.decode(self.prior(n, generator=generator) * temperature, generator=generator)


def demo_preset(run):
    """The `make demo` model: a small VAE sized for a CPU."""
    run.model.latent_dim = 16
    run.model.channels = [32, 64]
    run.model.hidden = 256
    run.train.steps = 1500
    run.train.batch_size = 64
    run.train.lr = 2e-3
    run.train.warmup_steps = 50
    run.train.eval_every = 250
    return run


def mnist_preset(run):
    """Binarized MNIST: wider, 32-d latent; the benchmark's configuration."""
    run.model.likelihood = "bernoulli"  # the binarized-MNIST protocol, whatever "auto" decides
    run.model.latent_dim = 32
    run.model.channels = [32, 64]
    run.model.hidden = 512
    run.train.batch_size = 128
    run.train.lr = 1e-3
    run.train.warmup_steps = 200
    run.train.eval_every = 1000
    return run


PRESETS = {"demo": demo_preset, "mnist": mnist_preset}
