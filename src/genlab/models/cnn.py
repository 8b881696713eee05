"""LeNet-style convolutional classifier.

[Conv -> ReLU -> MaxPool] x len(channels) -> [Linear -> ReLU] x len(hidden) -> Linear.
Besides being a family, a trained `cnn` is genlab's frozen feature extractor for sample-quality
metrics (see genlab.metrics.features): `features(x)` returns the last hidden layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.errors import DataError, UsageError
from genlab.models.base import GenerativeModel
from genlab.models.layers import conv_blocks, mlp_stack


@dataclass
class Config:
    channels: list[int] = field(default_factory=lambda: [6, 16])
    """Output channels of each convolution (LeNet-5: 6, 16)."""
    kernel_size: int = 5
    """Square kernel size; padding keeps the spatial size before each 2x2 max-pool."""
    hidden: list[int] = field(default_factory=lambda: [120, 84])
    """Widths of the fully connected layers (LeNet-5: 120, 84); the last is the feature size."""
    dropout: float = 0.0
    """Dropout before the classification layer."""
    batch_norm: bool = False
    """Batch norm after each convolution: the `simclr` encoder's layout, so that
    `--init-from` a simclr run (same channels, kernel_size 3) copies its whole encoder."""

    def validate(self) -> None:
        if any(c < 1 for c in self.channels) or any(h < 1 for h in self.hidden):
            raise UsageError(
                "model.channels and model.hidden must be positive; "
                f"got {self.channels} and {self.hidden}"
            )
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise UsageError(f"model.kernel_size must be odd and positive; got {self.kernel_size}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"model.dropout must be in [0, 1); got {self.dropout}")


class CNN(GenerativeModel):
    family = "cnn"
    description = "LeNet-style convolution + pooling classifier; genlab's metric feature extractor"
    discriminative = True
    Config = Config
    tiny = ("model.channels=[4,8]", "model.hidden=[16]")

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="image", labels=True)
        self.require_classes()
        c, h, w = info.shape
        self.convs = conv_blocks(c, cfg.channels, cfg.kernel_size, cfg.batch_norm)
        for out in cfg.channels:
            c, h, w = out, -(-h // 2), -(-w // 2)
        self.frozen_norms: list[nn.Module] = []
        self.fc = mlp_stack([c * h * w, *cfg.hidden], "relu")
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden[-1] if cfg.hidden else c * h * w, info.num_classes)

    def require_classes(self) -> None:
        if self.info.task != "classification":
            raise DataError("'cnn' is a classifier; its data needs class labels, not a regression")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations (B, hidden[-1]) of images x in [0, 1]."""
        h = self.convs(x * 2 - 1).flatten(1)  # (B, C, H, W) -> (B, C*H'*W')
        return F.relu(self.fc(h)) if len(self.fc) else h

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The features a probe or another classifier reuses: `features(x)`."""
        return self.features(x)

    def freeze(self, k: int) -> None:
        """Fine-tuning: stop training the first k convolution blocks (their batch norms keep
        their statistics too)."""
        if not 0 <= k <= len(self.cfg.channels):
            raise UsageError(
                f"train.freeze_layers must be between 0 and the {len(self.cfg.channels)} "
                f"convolution blocks of model.channels; got {k}"
            )
        per_block = len(self.convs) // len(self.cfg.channels)
        frozen = self.convs[: k * per_block]
        frozen.requires_grad_(False)
        self.frozen_norms = [m for m in frozen if isinstance(m, nn.BatchNorm2d)]
        self.train(self.training)

    def train(self, mode: bool = True) -> CNN:
        super().train(mode)
        for norm in self.frozen_norms:  # a frozen block's statistics do not move either
            norm.eval()
        return self

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K), with autograd (training)."""
        return self.head(self.dropout(self.features(x)))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K), without autograd."""
        return self.logits(x)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits, y = self.logits(batch["x"]), batch["y"]
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == y).float().mean()}


def mnist_preset(run):
    """LeNet-5 on 28x28 digits (full MNIST)."""
    run.train.steps = 3000
    run.train.batch_size = 128
    run.train.lr = 2e-3
    return run


PRESETS = {"mnist": mnist_preset}
