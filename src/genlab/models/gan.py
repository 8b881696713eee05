"""Deep convolutional GAN (DCGAN, Radford et al. 2016) or a StyleGAN-style generator, optionally
class-conditional.

Generator (`generator=dcgan`): z (+ class embedding) -> Linear -> [ConvTranspose 4x4 stride 2 ->
BatchNorm -> ReLU] per entry of `channels` (reversed) -> ConvTranspose 4x4 stride 2 -> sigmoid:
images in [0, 1].
Generator (`generator=style`, Karras et al. 2019, 2020): a mapping network z -> w, a learned
constant input, modulated and demodulated 3x3 convolutions styled by w with per-layer noise
inputs, bilinear up-sampling, and style mixing at sampling (`StyleGenerator` below).
Discriminator: [Conv 4x4 stride 2 -> LeakyReLU(0.2)] per entry of `channels` -> Linear -> one
logit; conditional models add the projection term <embed(y), h> (Miyato & Koyama 2018).
`spectral_norm` normalizes every discriminator layer by its largest singular value (Miyato et
al. 2018). No batch norm in the discriminator, so the WGAN-GP penalty stays per example.

Losses (`loss`), with D(x) the discriminator's logit:
- `nonsaturating` (Goodfellow et al. 2014): D minimizes softplus(-D(x)) + softplus(D(G(z))),
  G minimizes softplus(-D(G(z))).
- `hinge` (Lim & Ye 2017; Miyato et al. 2018): D minimizes relu(1 - D(x)) + relu(1 + D(G(z))),
  G minimizes -D(G(z)).
- `wgan-gp` (Gulrajani et al. 2017): D minimizes D(G(z)) - D(x) plus
  gp_weight * (|grad D(x_hat)| - 1)^2 at random interpolates x_hat; G minimizes -D(G(z)).

The default recipe is the one that keeps small-data training stable: two time-scale learning
rates (`d_lr` above `g_lr`), the R1 penalty on real images (`r1_gamma`, lazily every `r1_every`
steps), differentiable augmentation of everything the discriminator sees (`diffaug`: random
translation and cutout, Zhao et al. 2020) and, in the presets, an EMA of the generator's weights
(`train.ema_decay`), which sampling uses.

Training is adversarial, so the family owns `train_step` (one discriminator update, then one
generator update per batch, each with its own Adam optimizer, each through the loop's step
helper, which averages gradients across processes under torchrun, clips them and runs bf16
autocast); the shared loop still schedules the learning rates, reseeds, checks for NaN, keeps
the EMA and writes checkpoints. `loss(batch)` is the discriminator's loss on real images against
the current generator's (used for validation and by the contract tests), with the generator's
loss and the discriminator's accuracies on real and fake images logged beside it. A lower
discriminator loss does not mean a better generator, so the family's selection is "last": the
latest checkpoint is the best, and training never stops early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.data import DataInfo
from genlab.distributions import class_coverage
from genlab.errors import DataError, UsageError
from genlab.models.base import GenerativeModel, Selection, Updates


@dataclass
class Config:
    latent_dim: int = 64
    """Size of the generator's input noise z ~ N(0, I)."""
    channels: list[int] = field(default_factory=lambda: [64, 128])
    """Channels of the discriminator's stride-2 convolutions (the generator mirrors them)."""
    generator: Literal["dcgan", "style"] = "dcgan"
    """`dcgan`: transposed convolutions with batch norm; `style`: a StyleGAN-style generator
    (Karras et al. 2019, 2020): a mapping network z -> w, a learned constant input, modulated
    and demodulated convolutions styled by w, per-layer noise inputs, and style mixing at
    sampling (`genlab sample RUN --style-mix F`)."""
    mapping_layers: int = 2
    """style: fully connected layers of the mapping network z -> w (StyleGAN uses 8)."""
    mapping_lr: float = 1.0
    """style: the mapping network's learning rate as a fraction of g_lr (StyleGAN: 0.01, so
    that w drifts slowly while the synthesis layers learn to use it)."""
    conditional: bool = False
    """Class-conditional generation (needs labelled data): `genlab sample RUN --class K`."""
    loss: Literal["nonsaturating", "hinge", "wgan-gp"] = "nonsaturating"
    """Adversarial loss (see the module docstring)."""
    gp_weight: float = 10.0
    """wgan-gp: weight of the gradient penalty (Gulrajani et al. 2017 use 10)."""
    spectral_norm: bool = False
    """Spectral normalization of every discriminator layer (Miyato et al. 2018)."""
    r1_gamma: float = 1.0
    """Weight gamma of the R1 penalty (gamma / 2) E|grad_x D(x)|^2 on real images (Mescheder et
    al. 2018), which keeps the discriminator smooth around the data; 0 turns it off."""
    r1_every: int = 4
    """Lazy regularization (Karras et al. 2020): the R1 penalty every this many steps, scaled by
    it, so that its average weight stays gamma."""
    diffaug: bool = True
    """Differentiable augmentation (Zhao et al. 2020, DiffAugment): every image the discriminator
    sees, real or generated, in both players' updates, is randomly translated (up to 1/8 of its
    size, zero padding) and has a random square of half its size cut out; the generator gets
    gradients through it. It keeps the discriminator from memorizing small data sets."""
    g_lr: float = 1e-4
    """Generator learning rate (Adam); train.warmup_steps and train.schedule shape it over time."""
    d_lr: float = 4e-4
    """Discriminator learning rate (Adam); two time-scale updates (TTUR, Heusel et al. 2017) set
    it above g_lr, so that the discriminator tracks the generator closely."""
    g_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    """Generator Adam betas (DCGAN: 0.5, 0.999)."""
    d_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    """Discriminator Adam betas (WGAN-GP: 0.0, 0.9)."""
    monitor_samples: int = 512
    """Generated images classified by the frozen `cnn` at each evaluation for the class histogram
    and the mode-collapse warning (labelled data only); 0 turns it off."""
    monitor_classifier_steps: int = 2000
    """Training steps of that frozen classifier (the cached one `genlab eval` uses by default)."""

    def validate(self) -> None:
        if self.latent_dim < 1 or not self.channels or min(self.channels) < 1:
            raise UsageError(
                "model.latent_dim and model.channels (each entry) must be positive; "
                f"got {self.latent_dim}, {self.channels}"
            )
        if self.mapping_layers < 1:
            raise UsageError(f"model.mapping_layers must be at least 1; got {self.mapping_layers}")
        if not 0 < self.mapping_lr <= 1:
            raise UsageError(f"model.mapping_lr takes a fraction in (0, 1]; got {self.mapping_lr}")
        for name in ("g_lr", "d_lr"):
            if getattr(self, name) <= 0:
                raise UsageError(f"model.{name} must be greater than 0; got {getattr(self, name)}")
        for name in ("g_betas", "d_betas"):
            betas = getattr(self, name)
            if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
                raise UsageError(f"model.{name} takes two numbers in [0, 1); got {betas}")
        if self.r1_gamma < 0 or self.r1_every < 1:
            raise UsageError(
                "model.r1_gamma must be 0 or more and model.r1_every at least 1; "
                f"got {self.r1_gamma}, {self.r1_every}"
            )
        if self.gp_weight < 0 or self.monitor_samples < 0 or self.monitor_classifier_steps < 1:
            raise UsageError(
                "model.gp_weight and model.monitor_samples must be 0 or more and "
                "model.monitor_classifier_steps at least 1"
            )


class Generator(nn.Module):
    """z (B, latent) [+ class embedding (B, latent)] -> images (B, C, H, W) in [0, 1]."""

    def __init__(self, cfg: Config, shape: list[int], num_classes: int) -> None:
        super().__init__()
        c, h, w = shape
        ups = len(cfg.channels)  # one stride-2 up-sampling per channel entry
        self.bottom = (cfg.channels[-1], math.ceil(h / 2**ups), math.ceil(w / 2**ups))
        self.shape = (c, h, w)
        self.embed = nn.Embedding(num_classes, cfg.latent_dim) if num_classes else None
        self.project = nn.Sequential(
            nn.Linear(cfg.latent_dim, math.prod(self.bottom)),
            nn.BatchNorm1d(math.prod(self.bottom)),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        ch = cfg.channels[-1]
        for out in reversed(cfg.channels[:-1]):
            layers += [nn.ConvTranspose2d(ch, out, 4, 2, 1), nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        layers.append(nn.ConvTranspose2d(ch, c, 4, 2, 1))
        self.ups = nn.Sequential(*layers)
        # a bias right before batch norm is cancelled by it, so its gradient is only rounding
        # noise, which Adam would turn into steps of the full learning rate (and runs would
        # then depend on the order of summation, e.g. on the process count): kept, so that
        # checkpoints keep their keys, but not trained
        for layer in [self.project[0], *self.ups[:-1:3]]:
            layer.bias.requires_grad_(False)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            z = z * cond  # multiplicative class conditioning of the noise
        h = self.project(z).view(-1, *self.bottom)  # (B, C_last, h0, w0)
        out = self.ups(h)  # (B, C, h0 * 2^L, w0 * 2^L)
        _, height, width = self.shape
        return torch.sigmoid(out[:, :, :height, :width])  # crop the up-sampling's overshoot


class ModulatedConv2d(nn.Module):
    """A k x k convolution whose input channels are scaled per example by a style s = A(w)
    (modulation), each output channel's weights then rescaled to unit L2 norm (demodulation,
    StyleGAN2): the output's scale no longer depends on the style's, only its mix of features."""

    def __init__(self, cin: int, cout: int, k: int, w_dim: int, demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.scale = 1 / math.sqrt(cin * k * k)  # equalized learning rate: unit-variance weights
        self.affine = nn.Linear(w_dim, cin)  # w -> style s
        nn.init.ones_(self.affine.bias)  # styles start near 1: plain convolutions
        self.bias = nn.Parameter(torch.zeros(cout))
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)  # (B, Ci)
        weight = self.scale * self.weight  # (Co, Ci, k, k)
        # conv(x * s, W) equals the convolution with the per-example weights W * s, and
        # demodulating those weights is scaling output channel o by
        # 1 / sqrt(sum_i s_i^2 sum_k W_oik^2): one shared convolution does it
        out = F.conv2d(x * style[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            norm = style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t()  # (B, Co)
            out = out * torch.rsqrt(norm + 1e-8)[:, :, None, None]
        return out + self.bias[None, :, None, None]  # (B, Co, H, W)


class NoiseInput(nn.Module):
    """Adds per-pixel Gaussian noise, one map per example, scaled per channel by a learned weight
    (zero at first, as in StyleGAN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        noise = torch.randn((b, 1, h, w), generator=generator, device=x.device, dtype=x.dtype)
        return x + self.strength[None, :, None, None] * noise


class StyleGenerator(nn.Module):
    """z (B, latent) [+ class embedding] -> images (B, C, H, W) in [0, 1], StyleGAN-style.

    Mapping: z -> normalized to unit RMS -> `mapping_layers` x [Linear -> LeakyReLU] -> w.
    Synthesis: a learned constant (C_last, h0, w0) -> [modulated 3x3 conv -> noise -> LeakyReLU]
    at h0, then per entry of `channels` (reversed): bilinear 2x up-sampling and the same layer ->
    modulated 1x1 conv (no demodulation) to the image's channels -> sigmoid. Each of these
    `num_layers` layers takes its own w: one broadcast w, or two mixed at a crossover layer."""

    def __init__(self, cfg: Config, shape: list[int], num_classes: int) -> None:
        super().__init__()
        c, h, w = shape
        ups = len(cfg.channels)
        self.shape = (c, h, w)
        d = cfg.latent_dim
        self.embed = nn.Embedding(num_classes, d) if num_classes else None
        layers: list[nn.Module] = []
        for _ in range(cfg.mapping_layers):
            layers += [nn.Linear(d, d), nn.LeakyReLU(0.2)]
        self.mapping = nn.Sequential(*layers)
        ch = cfg.channels[-1]
        self.const = nn.Parameter(torch.randn(ch, math.ceil(h / 2**ups), math.ceil(w / 2**ups)))
        self.convs = nn.ModuleList([ModulatedConv2d(ch, ch, 3, d)])
        self.noises = nn.ModuleList([NoiseInput(ch)])
        for out in reversed(cfg.channels):
            self.convs.append(ModulatedConv2d(ch, out, 3, d))
            self.noises.append(NoiseInput(out))
            ch = out
        self.to_image = ModulatedConv2d(ch, c, 1, d, demodulate=False)
        self.num_layers = len(self.convs) + 1

    def map(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The intermediate latents w (B, latent) of noise z (and a class embedding)."""
        if cond is not None:
            z = z * cond  # multiplicative class conditioning of the noise, as the DCGAN's
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return self.mapping(z)

    def mix(self, w: torch.Tensor, w2: torch.Tensor, crossover: int) -> torch.Tensor:
        """Per-layer latents (B, num_layers, latent): w for layers before `crossover`, w2 from it
        on (crossover = num_layers: no mixing)."""
        layer = torch.arange(self.num_layers, device=w.device)[None, :, None]
        return torch.where(layer < crossover, w[:, None], w2[:, None])

    def synthesize(
        self, ws: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] from per-layer latents ws (B, num_layers, latent);
        `generator` draws the noise inputs."""
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)  # (B, C_last, h0, w0)
        for i, (conv, noise) in enumerate(zip(self.convs, self.noises, strict=True)):
            if i > 0:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(noise(conv(x, ws[:, i]), generator), 0.2)
        out = self.to_image(x, ws[:, -1])  # (B, C, h0 * 2^L, w0 * 2^L)
        _, height, width = self.shape
        return torch.sigmoid(out[:, :, :height, :width])  # crop the up-sampling's overshoot

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        w = self.map(z, cond)
        return self.synthesize(w[:, None].expand(-1, self.num_layers, -1))


class Discriminator(nn.Module):
    """Images (B, C, H, W) in [0, 1] [+ labels] -> logits (B,)."""

    def __init__(self, cfg: Config, shape: list[int], num_classes: int) -> None:
        super().__init__()
        norm = spectral_norm if cfg.spectral_norm else (lambda m: m)
        c, h, w = shape
        layers: list[nn.Module] = []
        for out in cfg.channels:
            layers += [norm(nn.Conv2d(c, out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c, h, w = out, h // 2, w // 2
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.head = norm(nn.Linear(c * h * w, 1))
        self.embed = norm(nn.Embedding(num_classes, c * h * w)) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.convs(x * 2 - 1)  # (B, C*H'*W')
        logit = self.head(h).squeeze(1)  # (B,)
        if self.embed is not None:  # projection discriminator
            logit = logit + (self.embed(y) * h).sum(1)
        return logit


def diff_augment(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """DiffAugment's translation and cutout of images x (B, C, H, W), differentiable in x.

    u (B, 4), uniform in [0, 1): per image, the shift along y and x (up to 1/8 of the size each
    way; the uncovered border is 0) and the centre of the cut-out square (half the size; its
    part inside the image becomes 0)."""
    b, _, h, w = x.shape
    ry, rx = max(1, round(h / 8)), max(1, round(w / 8))
    sy = (u[:, 0] * (2 * ry + 1)).long() - ry  # (B,) in [-ry, ry]
    sx = (u[:, 1] * (2 * rx + 1)).long() - rx
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    # translation: out[i, j] = x[i - sy, j - sx], read from the zero-padded image
    padded = F.pad(x, [rx, rx, ry, ry])  # (B, C, H + 2 ry, W + 2 rx)
    iy = (rows[None, :] - sy[:, None] + ry)[:, :, None]  # (B, H, 1)
    ix = (cols[None, :] - sx[:, None] + rx)[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    x = padded.permute(0, 2, 3, 1)[batch, iy, ix].permute(0, 3, 1, 2)  # (B, C, H, W)
    # cutout: zero the (H/2, W/2) square with its centre at (cy, cx)
    sh, sw = max(1, h // 2), max(1, w // 2)
    top = (u[:, 2] * h).long() - sh // 2  # (B,)
    left = (u[:, 3] * w).long() - sw // 2
    inside_y = ((rows[None, :] - top[:, None]) >= 0) & ((rows[None, :] - top[:, None]) < sh)
    inside_x = ((cols[None, :] - left[:, None]) >= 0) & ((cols[None, :] - left[:, None]) < sw)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


@dataclass(frozen=True)
class SampleOptions:
    temperature: float = 1.0
    """Scale of the latent noise, z ~ N(0, temperature^2 I) (the truncation trick's
    cousin): below 1 gives typical, less varied images."""
    class_label: int | None = field(default=None, metadata={"flag": "--class", "metavar": "K"})
    """The class to generate (class-conditional runs); default: classes drawn uniformly."""
    style_mix: float = field(default=0.0, metadata={"metavar": "F"})
    """Style mixing (model.generator=style): the last fraction F of the generator's layers, the
    finer ones, take their style from a second latent draw (0: no mixing, 0.5: the finer half,
    1: all of them)."""

    def validate(self) -> None:
        if self.temperature <= 0:
            raise UsageError(f"--temperature must be positive; got {self.temperature}")
        check_style_mix(self.style_mix)


def check_style_mix(style_mix: float) -> None:
    """A UsageError unless the style-mixing fraction is in [0, 1]."""
    if not 0 <= style_mix <= 1:
        raise UsageError(f"--style-mix takes a fraction of the layers in [0, 1]; got {style_mix}")


class GAN(GenerativeModel):
    family = "gan"
    description = (
        "DCGAN or StyleGAN-style generator, optionally class-conditional; nonsaturating, "
        "hinge or WGAN-GP loss; R1, DiffAugment, spectral norm; sample-quality metrics"
    )
    selection: ClassVar[Selection] = Selection(mode="last")
    Config = Config
    SampleOptions = SampleOptions
    one_pass_decode = True
    tiny = ("model.channels=[8,16]", "model.latent_dim=8", "model.monitor_samples=0")

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="image", labels=cfg.conditional)
        c, h, w = info.shape
        if min(h, w) < 2 ** len(cfg.channels):
            raise DataError(
                f"'gan' halves {h}x{w} images {len(cfg.channels)} times (model.channels="
                f"{cfg.channels}); use fewer entries in model.channels"
            )
        classes = info.num_classes if cfg.conditional else 0
        make = StyleGenerator if cfg.generator == "style" else Generator
        self.generator = make(cfg, info.shape, classes)
        self.discriminator = Discriminator(cfg, info.shape, classes)

    # the two players' losses ------------------------------------------------------------------
    def _noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn((n, self.cfg.latent_dim), generator=generator, device=self.device)

    def _generate(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The generator's images (B, C, H, W) for noise z and labels y (None: unconditional)."""
        return self.generator(z, None if y is None else self.generator.embed(y))

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's adversarial loss from its logits on real and fake images."""
        if self.cfg.loss == "nonsaturating":
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        if self.cfg.loss == "hinge":
            return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return fake.mean() - real.mean()  # wgan-gp: the negative Wasserstein estimate

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """The generator's loss from the discriminator's logits on its images."""
        if self.cfg.loss == "nonsaturating":
            return F.softplus(-fake).mean()
        return -fake.mean()

    def gradient_penalty(
        self, x: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None, eps: torch.Tensor
    ) -> torch.Tensor:
        """mean (|grad_x D(x_hat)| - 1)^2 at the points x_hat = eps x + (1 - eps) fake between
        real and fake images, eps (B, 1, 1, 1) in [0, 1]."""
        x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(
            self.discriminator(x_hat, y).sum(), x_hat, create_graph=True
        )  # (B, C, H, W)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    @staticmethod
    def _accuracies(real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """How often the discriminator calls real images real (logit > 0) and fakes fake."""
        return {
            "d_real_acc": (real > 0).float().mean(),
            "d_fake_acc": (fake < 0).float().mean(),
        }

    # contract ---------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The discriminator's loss on `batch` against the current generator ("loss"), the
        generator's loss and the discriminator's accuracies; no gradient reaches the generator."""
        x, y = batch["x"], self.batch_labels(batch)
        fake = self._generate(self._noise(x.shape[0]), y).detach()
        d_real, d_fake = self.discriminator(x, y), self.discriminator(fake, y)
        return {
            "loss": self.d_loss(d_real, d_fake),
            "g_loss": self.g_loss(d_fake).detach(),
            **self._accuracies(d_real.detach(), d_fake.detach()),
        }

    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        """One Adam per player, with the model's own learning rates and betas (the style
        generator's mapping network at mapping_lr x g_lr)."""
        c = self.cfg
        g_params: Any = self.generator.parameters()
        if c.generator == "style" and c.mapping_lr < 1:  # else one group, as before the option
            named = list(self.generator.named_parameters())
            g_params = [
                {"params": [p for n, p in named if not n.startswith("mapping.")]},
                {"params": [p for n, p in named if n.startswith("mapping.")],
                 "lr": c.g_lr * c.mapping_lr},
            ]  # fmt: skip
        return {
            "generator": torch.optim.Adam(g_params, lr=c.g_lr, betas=tuple(c.g_betas)),
            "discriminator": torch.optim.Adam(
                self.discriminator.parameters(), lr=c.d_lr, betas=tuple(c.d_betas)
            ),
        }

    def augment(self, x: torch.Tensor, helper: Updates) -> torch.Tensor:
        """What the discriminator sees of images x in training: x, or its DiffAugment."""
        if not self.cfg.diffaug:
            return x
        return diff_augment(x, helper.rand(x.shape[0], 4, device=x.device))

    def r1_penalty(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """E |grad_x D(x)|^2 at the real images x (the R1 penalty without its gamma / 2)."""
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(x, y).sum(), x, create_graph=True)
        return grad.flatten(1).pow(2).sum(1).mean()

    def train_step(
        self, batch: dict[str, torch.Tensor], helper: Updates, step: int
    ) -> dict[str, torch.Tensor]:
        """One discriminator update (adversarial loss, plus the R1 penalty every r1_every steps),
        then one generator update, on one batch; both players see augmented images when diffaug
        is on. `helper` steps the optimizers and draws the noise (genlab.models.base.Updates)."""
        c = self.cfg
        x, y = batch["x"], self.batch_labels(batch)
        z = helper.randn(x.shape[0], c.latent_dim, device=self.device)
        # 1. discriminator: real images up, the generator's (fixed) images down
        fake = self._generate(z, y).detach()  # (B, C, H, W)
        real_seen, fake_seen = self.augment(x, helper), self.augment(fake, helper)
        d_real, d_fake = self.discriminator(real_seen, y), self.discriminator(fake_seen, y)
        d_loss = self.d_loss(d_real, d_fake)
        out = {"loss": d_loss.detach(), **self._accuracies(d_real.detach(), d_fake.detach())}
        if c.loss == "wgan-gp":
            gp = self.gradient_penalty(
                real_seen, fake_seen, y, helper.rand(x.shape[0], 1, 1, 1, device=x.device)
            )
            d_loss = d_loss + c.gp_weight * gp
            out["gp"] = gp.detach()
        if c.r1_gamma > 0 and step % c.r1_every == 0:  # lazy: every r1_every steps, scaled up
            d_loss = d_loss + c.r1_gamma / 2 * c.r1_every * self.r1_penalty(real_seen, y)
        helper.update("discriminator", d_loss)
        # 2. generator: make the (just updated) discriminator call its images real
        self.discriminator.requires_grad_(False)  # its gradients would be thrown away
        try:
            seen = self.augment(self._generate(z, y), helper)
            g_loss = self.g_loss(self.discriminator(seen, y))
            helper.update("generator", g_loss)
        finally:
            self.discriminator.requires_grad_(True)
        return out | {"g_loss": g_loss.detach()}

    # training health --------------------------------------------------------------------------
    @torch.no_grad()
    def judge_steps(self) -> int:
        """The frozen `cnn` judge's training steps when the class histogram is monitored."""
        monitored = self.cfg.monitor_samples and self.info.task == "classification"
        return self.cfg.monitor_classifier_steps if monitored else 0

    def health(
        self,
        val: dict[str, float],
        *,
        generator: torch.Generator | None = None,
        judge: nn.Module | None = None,
    ) -> dict[str, Any]:
        """Figures and warnings for an evaluation: the class histogram of generated images under
        the frozen `judge` (mode collapse, which also sets "collapsed" for train.on_collapse;
        skipped without a judge) and whether the discriminator has won (divergence: a warning
        only)."""
        out: dict[str, Any] = {}
        warnings: list[str] = []
        real_acc, fake_acc = val.get("d_real_acc", 0.0), val.get("d_fake_acc", 0.0)
        # a discriminator right every time but not confident (early in training with R1, say)
        # still passes gradients: a generator loss of 2 is a fake judged real with p ~ 0.14
        confident = self.cfg.loss == "wgan-gp" or val.get("g_loss", math.inf) >= 2.0
        if real_acc >= 0.98 and fake_acc >= 0.98 and confident:
            warnings.append(
                f"training is diverging: the discriminator tells real from generated images "
                f"apart {100 * real_acc:.0f}% / {100 * fake_acc:.0f}% of the time, so the "
                "generator gets no useful gradient (generator loss "
                f"{val.get('g_loss', float('nan')):.3g}); try model.loss=hinge, "
                "model.spectral_norm=true or a lower model.d_lr"
            )
        if judge is not None and self.judge_steps():
            images = self.sample(self.cfg.monitor_samples, generator=generator)
            pred = judge.to(self.device).predict(images).argmax(-1).cpu()
            cov = class_coverage(pred, self.info.num_classes)
            out["class_histogram"] = cov["histogram"]
            out["classes_covered"] = cov["classes_covered"]
            top = max(range(len(cov["histogram"])), key=lambda k: cov["histogram"][k])
            share = cov["histogram"][top]
            k = self.info.num_classes
            if cov["classes_covered"] <= k // 2 or share >= min(0.9, 3 / k):
                name = self.info.class_names[top] if self.info.class_names else str(top)
                warnings.append(
                    f"mode collapse: {100 * share:.0f}% of {len(pred)} generated images look "
                    f"like class '{name}' to the frozen classifier (a fair share is "
                    f"{100 / k:.0f}%) and {cov['classes_covered']} of {k} classes appear; "
                    "train.on_collapse=restore rolls back and lowers the learning rates"
                )
                out["collapsed"] = True  # train.on_collapse acts on it
        if warnings:
            out["warnings"] = warnings
        return out

    # sampling ---------------------------------------------------------------------------------
    def prior(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latent codes from N(0, I): (n, latent_dim); conditional models append the class
        embedding of a uniformly drawn class, (n, 2 * latent_dim), so that interpolations
        morph between classes too."""
        z = self._noise(n, generator)
        y = self.sample_labels(n, None, generator)
        return z if y is None else torch.cat([z, self.generator.embed(y)], dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's images (B, C, H, W) in [0, 1] for latent codes z from `prior`."""
        if self.cfg.conditional:
            noise, cond = z.chunk(2, dim=1)
            return self.generator(noise, cond)
        return self.generator(z)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        class_label: int | None = None,
        style_mix: float = 0.0,
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] from z ~ N(0, temperature^2 I); conditional models
        draw the classes uniformly unless `class_label` is given. `style_mix` F > 0 (style
        generator): the last fraction F of the layers take the style of a second draw z2."""
        if temperature <= 0:
            raise UsageError(f"--temperature must be positive; got {temperature}")
        check_style_mix(style_mix)
        if style_mix and self.cfg.generator != "style":
            raise UsageError(
                f"--style-mix needs a run trained with model.generator=style; this run's "
                f"generator is {self.cfg.generator}"
            )
        z = self._noise(n, generator) * temperature
        y = self.sample_labels(n, class_label, generator)
        if self.cfg.generator != "style":
            return self._generate(z, y)
        g = self.generator
        cond = None if y is None else g.embed(y)
        w = g.map(z, cond)  # (n, latent)
        crossover = g.num_layers - round(style_mix * g.num_layers)
        w2 = g.map(self._noise(n, generator) * temperature, cond) if style_mix else w
        return g.synthesize(g.mix(w, w2, crossover), generator)


def mnist_preset(run):
    """28x28 digits: DCGAN's networks and Adam betas with the stable recipe (TTUR rates, lazy
    R1, DiffAugment), a constant rate and an EMA of the generator that ramps its decay up."""
    run.model.latent_dim = 64
    run.model.channels = [64, 128]
    run.train.batch_size = 64
    run.train.schedule = "constant"
    run.train.grad_clip = 0.0
    run.train.ema_decay = 0.999
    run.train.eval_every = 1000
    run.train.eval_batches = 10
    return run


def wgan_preset(run):
    """WGAN-GP (its gradient penalty replaces R1) with spectral norm off, TTUR learning rates
    and betas (0, 0.9)."""
    run = mnist_preset(run)
    run.model.loss = "wgan-gp"
    run.model.g_lr, run.model.d_lr = 1e-4, 3e-4
    run.model.g_betas, run.model.d_betas = [0.0, 0.9], [0.0, 0.9]
    run.model.r1_gamma = 0.0  # the WGAN-GP penalty instead
    return run


def mnist_full_preset(run):
    """All 60,000 MNIST digits (or other large sets): the mnist preset with DiffAugment off and
    both learning rates doubled (measured against it in docs/benchmarks.md)."""
    run = mnist_preset(run)
    run.model.diffaug = False  # it helps small data; on 60,000 images it slowed learning
    run.model.g_lr, run.model.d_lr = 2e-4, 8e-4
    return run


PRESETS = {"mnist": mnist_preset, "mnist-full": mnist_full_preset, "wgan": wgan_preset}
