"""SimCLR: contrastive representation learning from unlabelled images (Chen et al. 2020).

Each training image is seen twice through random views (genlab.augment: random resized crop,
small affine, blur, noise, colour jitter for RGB), made on the model's device for the whole
batch at once. An encoder ([Conv 3x3 -> BatchNorm -> ReLU -> MaxPool] per entry of `channels`,
then global average pooling; lightly's MNIST backbone is 32-64-128-128) gives a representation
h, a projection head (Linear -> ReLU -> Linear) maps it to z, and the NT-Xent loss pulls the two
views of an image together against the other 2B - 2 views of the batch:

    loss_i = -log( exp(s(z_i, z_j) / T) / sum_{k != i} exp(s(z_i, z_k) / T) ),  s = cosine.

The family does not generate data: `representation(x)` is what it is for. `genlab eval` scores
it by a linear probe and k-nearest neighbours on the labelled split, next to the same probes on
a random encoder and on raw pixels (genlab.metrics.probes). `genlab train cnn --init-from RUN`
fine-tunes its encoder as a classifier (set the cnn's channels, kernel_size 3 and batch_norm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genlab.augment import ViewConfig, views
from genlab.data import DataInfo
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel
from genlab.models.layers import conv_blocks


@dataclass
class Config:
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    """Output channels of the encoder's convolution blocks (lightly's MNIST backbone)."""
    proj_hidden: int = 128
    """Width of the projection head's hidden layer."""
    proj_dim: int = 64
    """Size of the projected code z the loss compares."""
    temperature: float = 0.5
    """NT-Xent temperature T: lower sharpens the contrast between positives and negatives."""
    crop_scale: list[float] = field(default_factory=lambda: [0.4, 1.0])
    """Views: area range of the random resized crop, as a fraction of the image."""
    rotate_degrees: float = 10.0
    """Views: rotation drawn in [-d, d] degrees."""
    shear: float = 0.1
    """Views: shear drawn in [-s, s]."""
    blur_prob: float = 0.5
    """Views: probability of a Gaussian blur (sigma 0.1-1 pixel of a 28-pixel image)."""
    jitter: float = 0.4
    """Views of RGB images: brightness, contrast and saturation factors in [1 - j, 1 + j]."""
    noise_std: float = 0.05
    """Views: additive Gaussian noise with standard deviation up to this."""

    def validate(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise UsageError(f"model.channels must be positive numbers; got {self.channels}")
        if self.proj_hidden < 1 or self.proj_dim < 1:
            raise UsageError("model.proj_hidden and model.proj_dim must be at least 1")
        if self.temperature <= 0:
            raise UsageError(f"model.temperature must be positive; got {self.temperature}")
        lo, hi = (self.crop_scale + [0, 0])[:2]
        if len(self.crop_scale) != 2 or not 0 < lo <= hi <= 1:
            raise UsageError(
                f"model.crop_scale takes [min,max] with 0 < min <= max <= 1; got {self.crop_scale}"
            )
        if not 0 <= self.blur_prob <= 1 or self.jitter < 0 or self.noise_std < 0:
            raise UsageError("model.blur_prob must be in [0, 1]; jitter and noise_std >= 0")

    def views(self) -> ViewConfig:
        """The augmentation settings as genlab.augment takes them."""
        return ViewConfig(
            crop_scale=(self.crop_scale[0], self.crop_scale[1]),
            rotate_degrees=self.rotate_degrees,
            shear=self.shear,
            blur_prob=self.blur_prob,
            jitter=self.jitter,
            noise_std=self.noise_std,
        )


@dataclass(frozen=True)
class EvalOptions:
    probe_examples: int | None = None
    """Labelled training examples the probes learn from (default: the whole train split)."""
    knn_k: int = 200
    """Neighbours of the kNN probe (fewer when the train split is smaller)."""

    def validate(self) -> None:
        if self.probe_examples is not None and self.probe_examples < 2:
            raise UsageError(f"--probe-examples must be at least 2; got {self.probe_examples}")
        if self.knn_k < 1:
            raise UsageError(f"--knn-k must be at least 1; got {self.knn_k}")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean NT-Xent loss of the pairs (z1[i], z2[i]), each (B, D), over all 2B views."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, D)
    sim = z @ z.T / temperature  # (2B, 2B)
    sim.fill_diagonal_(float("-inf"))  # a view is not its own negative
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLR(GenerativeModel):
    family = "simclr"
    description = "contrastive representation learning (SimCLR, NT-Xent); probes, no sampling"
    Config = Config
    EvalOptions = EvalOptions
    tiny = ("model.channels=[8,16]", "model.proj_hidden=16", "model.proj_dim=8")

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="image")
        self.convs = conv_blocks(info.shape[0], cfg.channels, 3, batch_norm=True)
        width = cfg.channels[-1]
        self.head = nn.Sequential(
            nn.Linear(width, cfg.proj_hidden), nn.ReLU(), nn.Linear(cfg.proj_hidden, cfg.proj_dim)
        )
        self.view_cfg = cfg.views()

    def encoder(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's features (B, channels[-1]) of images x in [0, 1], with autograd."""
        return self.convs(x * 2 - 1).mean((2, 3))  # (B, C, H', W') -> (B, C)

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's features (B, channels[-1]) of images x in [0, 1], without autograd."""
        return self.encoder(x)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]
        b = x.shape[0]
        v = views(torch.cat([x, x]), self.view_cfg)  # both views of every image in one pass
        z = self.head(self.encoder(v))  # (2B, proj_dim)
        loss = nt_xent(z[:b], z[b:], self.cfg.temperature)
        with torch.no_grad():  # how often a view's nearest other view is its partner
            zn = F.normalize(z.float(), dim=1)
            sim = zn @ zn.T
            sim.fill_diagonal_(float("-inf"))
            partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
            acc = (sim.argmax(1) == partner).float().mean()
        return {"loss": loss, "pair_accuracy": acc}


def mnist_preset(run):
    """lightly's MNIST recipe: batch 256, temperature 0.5, Adam 1e-3; bf16 matrix products
    where the device computes them natively (the loss itself stays in float32)."""
    run.model.channels = [32, 64, 128, 128]
    run.model.temperature = 0.5
    run.train.batch_size = 256
    run.train.optimizer = "adam"
    run.train.lr = 1e-3
    run.train.schedule = "constant"
    run.train.grad_clip = 0.0
    run.train.bf16 = "auto"
    run.train.eval_every = 500
    run.train.eval_batches = 4
    return run


PRESETS = {"mnist": mnist_preset}
