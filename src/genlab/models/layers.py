"""Building blocks that really are shared between families."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
}


def mlp_stack(sizes: list[int], activation: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """Linear layers of the given sizes with an activation (and dropout) after each but the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def conv_blocks(
    in_channels: int, channels: list[int], kernel_size: int = 3, batch_norm: bool = True
) -> nn.Sequential:
    """[Conv (same padding) -> BatchNorm -> ReLU -> 2x2 max-pool] per entry of `channels`, the
    encoder shared by `simclr` and a `cnn` with model.batch_norm (so weights transfer by name).
    The pools round up, so images as small as 8x8 pass any number of blocks."""
    layers: list[nn.Module] = []
    c = in_channels
    for out in channels:
        layers.append(nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers += [nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        c = out
    return nn.Sequential(*layers)
