"""Feed-forward network (multi-layer perceptron): classification or regression.

The textbook network: flattened input -> [Linear -> activation] x len(hidden) -> Linear.
Classification trains with cross-entropy (or, as in early textbooks, the mean squared error
between the softmax output and the one-hot label); regression with the mean squared error on
the standardized target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from genlab.data import DataInfo
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel
from genlab.models.layers import mlp_stack


@dataclass
class Config:
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    """Widths of the hidden layers, input side first."""
    activation: Literal["sigmoid", "tanh", "relu", "gelu"] = "relu"
    """Non-linearity after each hidden layer."""
    loss: Literal["auto", "cross_entropy", "mse"] = "auto"
    """auto: cross-entropy for classification, mse for regression."""
    dropout: float = 0.0
    """Dropout probability after each hidden activation."""

    def validate(self) -> None:
        if any(h < 1 for h in self.hidden):
            raise UsageError(f"model.hidden widths must be positive; got {self.hidden}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"model.dropout must be in [0, 1); got {self.dropout}")


class MLP(GenerativeModel):
    family = "mlp"
    description = "feed-forward network: classifier or regressor on images or CSV columns"
    discriminative = True
    Config = Config
    tiny = ("model.hidden=[32]",)

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(labels=True)
        self.classify = info.task == "classification"
        loss = cfg.loss if cfg.loss != "auto" else ("cross_entropy" if self.classify else "mse")
        if loss == "cross_entropy" and not self.classify:
            raise UsageError("model.loss=cross_entropy needs class labels; use mse for regression")
        self.loss_name = loss
        out = info.num_classes if self.classify else 1
        self.net = mlp_stack([self.dims, *cfg.hidden, out], cfg.activation, cfg.dropout)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K) or the standardized regression output (B,), with autograd."""
        out = self.net(x.flatten(1))  # (B, D) -> (B, K)
        return out if self.classify else out.squeeze(1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """`outputs` without autograd."""
        return self.outputs(x)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out, y = self.outputs(batch["x"]), batch["y"]
        if not self.classify:
            return {"loss": F.mse_loss(out, y)}
        if self.loss_name == "mse":
            target = F.one_hot(y, self.info.num_classes).to(out.dtype)
            loss = F.mse_loss(out.softmax(-1), target)
        else:
            loss = F.cross_entropy(out, y)
        return {"loss": loss, "accuracy": (out.argmax(-1) == y).float().mean()}


def digits_preset(run):
    """A quick classifier for the 8x8 digits."""
    run.train.steps = 1000
    run.train.batch_size = 64
    run.train.lr = 3e-3
    return run


PRESETS = {"digits": digits_preset}
