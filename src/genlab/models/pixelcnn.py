"""PixelCNN: exact-likelihood autoregressive models of images in raster order. Two networks:
the Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders", `model.arch=gated`, the default) and PixelCNN++'s multi-resolution network (Salimans
et al. 2017, `model.arch=pp`).

p(x) = prod_i p(x_i | x_<i), pixels i in raster order (row by row, left to right). The channels
of one pixel are predicted together from the pixels before it (for grayscale data, the usual
case, this is the paper's model; for RGB it drops the within-pixel R -> G -> B ordering).

Two stacks of masked convolutions remove the blind spot of the original PixelCNN:
- the vertical stack sees the rows above: a (k//2 + 1) x k convolution padded at the top,
  whose output is shifted down one row before it feeds the horizontal stack;
- the horizontal stack sees the pixels to the left in the same row: a 1 x (k//2 + 1)
  convolution padded at the left; the first layer is masked type A (the current pixel excluded),
  later layers type B (the current position included, which by then holds only the past).
Each layer is gated, tanh(a) * sigmoid(b), with an optional class embedding added to a and b,
and the horizontal stack is residual. A 1x1 head gives per pixel and channel one Bernoulli
logit (binarized data), one logit per intensity level (a categorical over e.g. 256 values), or
the parameters of a discretized logistic mixture (PixelCNN++; for RGB its means are linear in
the pixel's earlier channels, restoring the R -> G -> B order).

`model.arch=pp` is PixelCNN++'s network: a stream that sees the rows above (down-shifted
convolutions) and one that sees the rows above and the pixels to the left (down-right-shifted
convolutions), through gated residual blocks at `model.scales` resolutions, each half the last
(strided shifted convolutions down, shifted transposed convolutions up), with shortcut
connections from every block on the way down to its mirror on the way up, and dropout.

`nll` is exact: the sum of the per-pixel negative log-probabilities, in nats per image.
Sampling generates pixel by pixel and reuses computation across pixels: each layer keeps its
features of the rows and columns done so far, so a new row costs one row per layer in the
vertical stack (a convolution over the last k//2 + 1 rows of the layer below) and a new pixel
one position per layer in the horizontal stack (over the last k//2 + 1 columns), instead of
passes over everything generated so far. The logits are those of the full pass. The pp network
is rerun once per pixel, on the rows generated so far.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.distributions import (
    auto_pixel_model,
    binarize,
    discretized_logistic_mixture_log_prob,
    logistic_mixture_size,
    sample_logistic_mixture,
)
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel


@dataclass
class Config:
    arch: Literal["gated", "pp"] = "gated"
    """gated: the Gated PixelCNN's vertical and horizontal stacks at full resolution, with cached
    sampling. pp: PixelCNN++'s two shifted streams over `scales` resolutions with `resnets`
    gated residual blocks each way and shortcut connections (sampling reruns it per pixel)."""
    channels: int = 64
    """Feature maps of each stack in every gated layer (pp: of every residual block)."""
    layers: int = 8
    """gated: gated layers, the first (type A) included."""
    first_kernel: int = 7
    """gated: kernel size k of the first (type A) layer (odd)."""
    kernel: int = 3
    """gated: kernel size k of the later (type B) layers (odd)."""
    head: int = 256
    """gated: width of the 1x1 output head (0: logits straight from the last layer)."""
    scales: int = 3
    """pp: resolutions (28x28 images: 28, 14 and 7)."""
    resnets: int = 2
    """pp: gated residual blocks per resolution, on the way down and again on the way up."""
    dropout: float = 0.0
    """Dropout inside every gated layer or residual block (PixelCNN++ used 0.5)."""
    pixels: Literal["auto", "bernoulli", "categorical", "logistic"] = "auto"
    """Per-pixel model: Bernoulli on binarized data, a categorical over the data's intensity
    levels (256 for 8-bit images, so bits/dim compare with other families), or PixelCNN++'s
    discretized logistic mixture over those levels (`mixtures` components); auto: bernoulli for
    nearly binary data (e.g. MNIST), else categorical (genlab.distributions.nearly_binary). The
    run's config records the choice."""
    mixtures: int = 5
    """logistic: mixture components per pixel."""
    binarize: Literal["dynamic", "threshold"] = "dynamic"
    """For `bernoulli`: a fresh random draw of each pixel every pass, or pixel > 0.5."""
    conditional: bool = False
    """Class-conditional (needs labelled data): `genlab sample RUN --class K`."""

    def validate(self) -> None:
        if self.scales < 1 or self.resnets < 1 or self.mixtures < 1:
            raise UsageError(
                "model.scales, model.resnets and model.mixtures must be positive; "
                f"got {self.scales}, {self.resnets}, {self.mixtures}"
            )
        if not 0 <= self.dropout < 1:
            raise UsageError(f"model.dropout must be in [0, 1); got {self.dropout}")
        if self.channels < 1 or self.layers < 1 or self.head < 0:
            raise UsageError(
                "model.channels and model.layers must be positive and model.head 0 or more; "
                f"got {self.channels}, {self.layers}, {self.head}"
            )
        for name in ("first_kernel", "kernel"):
            k = getattr(self, name)
            if k < 1 or k % 2 == 0:
                raise UsageError(f"model.{name} must be odd and positive; got {k}")


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every row one down (zeros enter at the top): row i then holds row i - 1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


class VerticalConv(nn.Conv2d):
    """A (k//2 + 1) x k convolution whose output at row i sees input rows i - k//2 .. i."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__(c_in, c_out, (k // 2 + 1, k))
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.k // 2
        return super().forward(F.pad(x, (r, r, r, 0)))  # pad left, right and top only


class HorizontalConv(nn.Conv2d):
    """A 1 x (k//2 + 1) convolution over the pixels left of each position: type "B" includes
    the position itself, type "A" masks it out."""

    def __init__(self, c_in: int, c_out: int, k: int, mask_type: Literal["A", "B"]) -> None:
        super().__init__(c_in, c_out, (1, k // 2 + 1))
        self.k = k
        mask = torch.ones_like(self.weight)
        if mask_type == "A":
            mask[..., -1] = 0  # the tap on the current pixel
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.k // 2, 0, 0, 0))  # pad left only
        return F.conv2d(x, self.weight * self.mask, self.bias)


def gate(x: torch.Tensor) -> torch.Tensor:
    """(B, 2C, H, W) -> (B, C, H, W): tanh(first half) * sigmoid(second half)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer with a vertical and a horizontal stack."""

    def __init__(
        self,
        c_in: int,
        c: int,
        k: int,
        mask_type: Literal["A", "B"],
        classes: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.v_conv = VerticalConv(c_in, 2 * c, k)
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_conv = HorizontalConv(c_in, 2 * c, k, mask_type)
        self.h_out = nn.Conv2d(c, c, 1)
        self.residual = mask_type == "B"  # the first layer's input is the image, not features
        self.cond = nn.Embedding(classes, 4 * c) if classes else None

    def conditioning(self, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-class biases of the vertical and horizontal gates, each (B, 2C, 1, 1)."""
        if self.cond is None:
            return None
        v, h = self.cond(y)[:, :, None, None].chunk(2, dim=1)
        return v, h

    def vertical(
        self, v: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The vertical stack's next features (B, C, H, W) and its input to the horizontal
        stack (B, 2C, H, W), which at row i depends only on rows < i."""
        pre = self.v_conv(v)  # (B, 2C, H, W): rows <= i
        to_h = self.v_to_h(down_shift(pre))  # rows < i
        if cond is not None:
            pre = pre + cond[0]
        return gate(pre), to_h

    def horizontal(
        self,
        h: torch.Tensor,
        to_h: torch.Tensor,
        cond: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """The horizontal stack's next features (B, C, H, W)."""
        pre = self.h_conv(h) + to_h  # (B, 2C, H, W)
        if cond is not None:
            pre = pre + cond[1]
        out = self.h_out(self.drop(gate(pre)))
        return h + out if self.residual else out

    def column_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The horizontal stack as matrices for one position: (masked convolution (w * C_in,
        2C) over the last w = k//2 + 1 columns flattened column-major, its bias, the 1x1 output
        (C, C) and its bias)."""
        w = (self.h_conv.weight * self.h_conv.mask)[:, :, 0, :]  # (2C, C_in, w)
        conv = w.permute(2, 1, 0).reshape(-1, w.shape[0])
        return conv, self.h_conv.bias, self.h_out.weight[:, :, 0, 0].t(), self.h_out.bias


class VerticalCache:
    """The vertical stacks of every layer, computed one image row at a time while sampling.

    Each layer keeps its input rows so far, with k//2 zero rows above the image (the padding of
    its convolution); once row r of the image is known, each layer computes its row r from the
    k//2 + 1 rows up to it, and its input to the horizontal stack of row r + 1.
    """

    def __init__(self, layers: nn.ModuleList, conds: list, canvas: torch.Tensor) -> None:
        b, c, height, width = canvas.shape
        self.layers, self.conds, self.canvas = layers, conds, canvas
        self.radii = [layer.v_conv.k // 2 for layer in layers]
        channels = [c] + [layer.h_out.out_channels for layer in layers[:-1]]
        self.inputs = [
            canvas.new_zeros((b, ch, r + height, width))
            for ch, r in zip(channels, self.radii, strict=True)
        ]

    def next_row(self, i: int) -> list[torch.Tensor]:
        """Per layer, the vertical stack's input to the horizontal stack at row i, (B, 2C, 1, W);
        reads image rows < i of the canvas."""
        if i == 0:  # nothing above the first row: down-shifted zeros
            shape = (self.canvas.shape[0], 1, 1, self.canvas.shape[-1])
            return [layer.v_to_h.bias.view(1, -1, 1, 1).expand(shape[0], -1, 1, shape[-1])
                    for layer in self.layers]  # fmt: skip
        r = i - 1
        self.inputs[0][:, :, self.radii[0] + r] = self.canvas[:, :, r] * 2 - 1
        out = []
        for li, (layer, cond, k) in enumerate(
            zip(self.layers, self.conds, self.radii, strict=True)
        ):
            window = F.pad(self.inputs[li][:, :, r : r + k + 1], (k, k, 0, 0))
            pre = F.conv2d(window, layer.v_conv.weight, layer.v_conv.bias)  # (B, 2C, 1, W)
            out.append(layer.v_to_h(pre))
            if li + 1 < len(self.layers):
                if cond is not None:
                    pre = pre + cond[0]
                self.inputs[li + 1][:, :, self.radii[li + 1] + r] = gate(pre)[:, :, 0]
        return out


# PixelCNN++'s network (model.arch=pp) ------------------------------------------------------------
class ShiftedConv(nn.Conv2d):
    """A convolution whose output at (i, j) sees only input rows <= i: `down` (k x 3, padded
    above, left and right: columns j-1..j+1) or `down-right` (k x 2, padded above and left:
    columns j-1..j). Stride 2 halves the resolution and keeps that property."""

    def __init__(self, c_in: int, c_out: int, kind: str, rows: int = 2, stride: int = 1):
        cols = 3 if kind == "down" else 2
        super().__init__(c_in, c_out, (rows, cols), stride=stride)
        self.pad = (1, 1, rows - 1, 0) if kind == "down" else (1, 0, rows - 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class ShiftedDeconv(nn.ConvTranspose2d):
    """Doubles the resolution of a `down` or `down-right` stream: a stride-2 transposed 2 x 3 (2
    x 2) convolution cropped so that output row r reads input rows <= r / 2, which saw only rows
    before 2 x (input row) of the image."""

    def __init__(self, c_in: int, c_out: int, kind: str):
        super().__init__(c_in, c_out, (2, 3 if kind == "down" else 2), stride=2)
        self.left = 1 if kind == "down" else 0  # a 3-wide kernel spills one column left

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = super().forward(x)
        return out[:, :, : size[0], self.left : self.left + size[1]]


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """ELU of x and of -x side by side (B, 2C, H, W): PixelCNN++'s non-linearity."""
    return F.elu(torch.cat([x, -x], dim=1))


class ResBlock(nn.Module):
    """PixelCNN++'s gated residual block on one stream: x + gate(conv(concat_elu(conv(x) +
    1x1(extra)))), with dropout before the second convolution, and on the gate a class bias and
    a 1x1 map of conditioning features (`features` channels; a VAE's decoder maps of z)."""

    def __init__(
        self, c: int, kind: str, extra: int, classes: int, dropout: float, features: int = 0
    ):
        super().__init__()
        self.conv_in = ShiftedConv(2 * c, c, kind)
        self.extra = nn.Conv2d(2 * extra, c, 1) if extra else None
        self.drop = nn.Dropout(dropout)
        self.conv_out = ShiftedConv(2 * c, 2 * c, kind)
        self.cond = nn.Embedding(classes, 2 * c) if classes else None
        self.map = nn.Conv2d(features, 2 * c, 1) if features else None

    def forward(
        self,
        x: torch.Tensor,
        extra: torch.Tensor | None,
        y: torch.Tensor | None,
        maps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.conv_in(concat_elu(x))
        if self.extra is not None:
            h = h + self.extra(concat_elu(extra))
        h = self.conv_out(self.drop(concat_elu(h)))
        if self.cond is not None:
            h = h + self.cond(y)[:, :, None, None]
        if self.map is not None:
            h = h + self.map(maps[..., : h.shape[-2], : h.shape[-1]])
        return x + gate(h)


class PPNet(nn.Module):
    """PixelCNN++'s two streams: u sees the rows above a pixel, ul the rows above and the pixels
    to its left. Down: `resnets` blocks per resolution (ul's also reads u), then a strided shifted
    convolution; up: a shifted transposed convolution, then `resnets` + 1 blocks per resolution
    that read, in mirror order, the streams that entered the way down at that resolution and
    every down block's outputs (shortcut connections). Output: (B, P, H, W) from ul, each
    position depending only on the pixels before it. With `features` > 0 every block also
    reads conditioning maps (B, features, H, W) of the full image's size, average-pooled to
    each resolution; they may depend on anything but the image (a VAE's maps of z)."""

    def __init__(self, c_in: int, cfg: Config, classes: int, out: int, features: int = 0) -> None:
        super().__init__()
        c, n, drop, f = cfg.channels, cfg.resnets, cfg.dropout, features
        self.u_in = ShiftedConv(c_in + 1, c, "down", rows=2)
        self.ul_in_up = ShiftedConv(c_in + 1, c, "down", rows=1)
        self.ul_in_left = ShiftedConv(c_in + 1, c, "down-right", rows=2)

        def blocks(count: int, u_extra: int, ul_extra: int) -> nn.ModuleList:
            return nn.ModuleList(
                nn.ModuleList(
                    [
                        ResBlock(c, "down", u_extra, classes, drop, f),
                        ResBlock(c, "down-right", ul_extra, classes, drop, f),
                    ]
                )
                for _ in range(count)
            )

        # each resolution keeps its input pair and its n blocks' outputs; the way up has one
        # block more per resolution than the way down, so that every one is read once
        self.down = nn.ModuleList(blocks(n, 0, c) for _ in range(cfg.scales))
        self.up = nn.ModuleList(blocks(n + 1, c, 2 * c) for _ in range(cfg.scales))
        self.shrink = nn.ModuleList(
            nn.ModuleList([ShiftedConv(c, c, kind, stride=2) for kind in ("down", "down-right")])
            for _ in range(cfg.scales - 1)
        )
        self.grow = nn.ModuleList(
            nn.ModuleList([ShiftedDeconv(c, c, kind) for kind in ("down", "down-right")])
            for _ in range(cfg.scales - 1)
        )
        self.out = nn.Conv2d(c, out, 1)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None, maps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, C, R, W): the image's first R rows (R = H but when sampling); maps: the
        conditioning maps of the whole image (B, features, H, W), or None."""
        x = torch.cat([x * 2 - 1, torch.ones_like(x[:, :1])], dim=1)  # ones: the image's extent
        u = down_shift(self.u_in(x))
        ul = down_shift(self.ul_in_up(x)) + F.pad(self.ul_in_left(x), (1, 0))[..., :-1]
        scaled = [None] * len(self.down)  # the maps at each resolution (blocks crop the rows)
        if maps is not None:
            scaled = [maps] + [
                F.avg_pool2d(maps, 2**s, ceil_mode=True) for s in range(1, len(self.down))
            ]
        kept = []
        for s, level in enumerate(self.down):
            if s:
                u, ul = self.shrink[s - 1][0](u), self.shrink[s - 1][1](ul)
            kept.append((u, ul))
            for u_block, ul_block in level:
                u = u_block(u, None, y, scaled[s])
                ul = ul_block(ul, u, y, scaled[s])
                kept.append((u, ul))
        for s, level in enumerate(self.up):
            if s:
                size = kept[-1][0].shape[-2:]
                u, ul = self.grow[s - 1][0](u, size), self.grow[s - 1][1](ul, size)
            m = scaled[len(self.up) - 1 - s]
            for u_block, ul_block in level:
                k_u, k_ul = kept.pop()
                u = u_block(u, k_u, y, m)
                ul = ul_block(ul, torch.cat([u, k_ul], dim=1), y, m)
        return self.out(F.elu(ul))


@dataclass(frozen=True)
class SampleOptions:
    temperature: float = 1.0
    """Softmax temperature of each pixel's distribution: below 1 sharpens it."""
    class_label: int | None = field(default=None, metadata={"flag": "--class", "metavar": "K"})
    """The class to generate (class-conditional runs); default: classes drawn uniformly."""

    def validate(self) -> None:
        if self.temperature <= 0:
            raise UsageError(f"--temperature must be positive; got {self.temperature}")


class PixelCNN(GenerativeModel):
    family = "pixelcnn"
    description = (
        "Gated PixelCNN (vertical + horizontal stacks) or PixelCNN++ (model.arch=pp); exact NLL; "
        "pixel-by-pixel sampling and completion"
    )
    Config = Config
    SampleOptions = SampleOptions
    # bernoulli pinned: the golden runs (tests/golden) were recorded with it, before "auto"
    tiny = ("model.channels=8", "model.layers=3", "model.head=16", "model.pixels=bernoulli")

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="image", labels=cfg.conditional)
        cfg.pixels, why = auto_pixel_model(
            info, "pixels", cfg.pixels, binary="bernoulli", discrete="categorical"
        )
        self.choices = [why] if why else []
        c = info.shape[0]
        levels = info.record.levels
        if cfg.pixels == "bernoulli":
            self.out_channels = c  # one logit per channel
        elif cfg.pixels == "categorical":
            self.out_channels = c * levels  # one logit per channel and level
        else:
            self.out_channels = logistic_mixture_size(c, cfg.mixtures)
        classes = info.num_classes if cfg.conditional else 0
        if cfg.arch == "pp":
            self.net = PPNet(c, cfg, classes, self.out_channels)
            return
        self.layers = nn.ModuleList(
            [GatedLayer(c, cfg.channels, cfg.first_kernel, "A", classes, cfg.dropout)]
            + [
                GatedLayer(cfg.channels, cfg.channels, cfg.kernel, "B", classes, cfg.dropout)
                for _ in range(cfg.layers - 1)
            ]
        )
        head: list[nn.Module] = [nn.ReLU()]
        width = cfg.channels
        if cfg.head:
            head += [nn.Conv2d(width, cfg.head, 1), nn.ReLU()]
            width = cfg.head
        head.append(nn.Conv2d(width, self.out_channels, 1))
        self.head = nn.Sequential(*head)

    # the network ------------------------------------------------------------------------------
    def _conds(self, y: torch.Tensor | None) -> list:
        return [layer.conditioning(y) for layer in self.layers]

    def vertical_inputs(self, x: torch.Tensor, conds: list) -> list[torch.Tensor]:
        """Per layer, the vertical stack's input to the horizontal stack (B, 2C, H, W)."""
        v, out = x * 2 - 1, []
        for layer, cond in zip(self.layers, conds, strict=True):
            v, to_h = layer.vertical(v, cond)
            out.append(to_h)
        return out

    def horizontal_outputs(
        self, x: torch.Tensor, to_h: list[torch.Tensor], conds: list
    ) -> torch.Tensor:
        """Gated network: outputs (B, P, H, W) from the image (B, C, H, W) and the vertical
        inputs."""
        h = x * 2 - 1
        for layer, t, cond in zip(self.layers, to_h, conds, strict=True):
            h = layer.horizontal(h, t, cond)
        return self.head(h)

    def outputs(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The pixel model's parameters (B, P, H, W) at every pixel given the pixels before it:
        bernoulli, one logit per channel; categorical, `levels` logits per channel (channel
        major); logistic, the mixture's parameters (genlab.distributions)."""
        if self.cfg.arch == "pp":
            return self.net(x, y)
        conds = self._conds(y)
        return self.horizontal_outputs(x, self.vertical_inputs(x, conds), conds)

    # likelihood -------------------------------------------------------------------------------
    def observe(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The data as the model sees it: binarized for `bernoulli`, on the level grid for
        `categorical` and `logistic`."""
        if self.cfg.pixels != "bernoulli":
            top = self.info.record.levels - 1
            return torch.round(x * top) / top
        return binarize(x, self.cfg.binarize, generator)

    def _nll(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Exact negative log-likelihood (B,) in nats of observed images x."""
        out = self.outputs(x, y).float()  # (B, P, H, W)
        levels = self.info.record.levels
        if self.cfg.pixels == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(out, x, reduction="none")
        elif self.cfg.pixels == "categorical":
            b, c, height, width = x.shape
            logits = out.view(b, c, levels, height, width).transpose(1, 2)  # (B, K, C, H, W)
            nll = F.cross_entropy(logits, torch.round(x * (levels - 1)).long(), reduction="none")
        else:
            nll = -discretized_logistic_mixture_log_prob(out, x, levels)
        return nll.flatten(1).sum(1)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        nll = self._nll(self.observe(batch["x"]), self.batch_labels(batch))
        return {"loss": nll.mean()}

    def nll(self, batch: dict[str, torch.Tensor], *, generator=None) -> torch.Tensor:
        """Exact negative log-likelihood in nats per image, (B,) (of the binarized images for
        `bernoulli`, drawn with `generator`)."""
        return self._nll(self.observe(batch["x"], generator), self.batch_labels(batch))

    # sampling ---------------------------------------------------------------------------------
    def _draw(
        self, out: torch.Tensor, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Pixel values (B, C) in [0, 1] drawn from one pixel's outputs (B, P)."""
        c, levels = self.info.shape[0], self.info.record.levels
        if self.cfg.pixels == "bernoulli":
            p = torch.sigmoid(out / temperature)
            return torch.bernoulli(p, generator=generator)
        if self.cfg.pixels == "logistic":
            return sample_logistic_mixture(out, c, levels, temperature, generator)
        probs = torch.softmax(out.view(len(out), c, levels) / temperature, dim=-1)  # (B, C, K)
        idx = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(probs.shape[:2])
        return idx.to(probs.dtype) / (levels - 1)

    def _generate(
        self,
        canvas: torch.Tensor,
        start_row: int,
        y: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Fill rows start_row.. of canvas (B, C, H, W) pixel by pixel, in raster order."""
        if temperature <= 0:
            raise UsageError(f"--temperature must be positive; got {temperature}")
        b, c, height, width = canvas.shape
        if self.cfg.arch == "pp":  # a pass per pixel over the rows so far (row i reads rows <= i)
            for i, j in itertools.product(range(start_row, height), range(width)):
                out = self.outputs(canvas[:, :, : i + 1], y)[:, :, i, j]
                canvas[:, :, i, j] = self._draw(out, temperature, generator)
            return canvas
        conds = self._conds(y)
        vertical = VerticalCache(self.layers, conds, canvas)
        weights = [layer.column_weights() for layer in self.layers]
        widths = [layer.h_conv.k // 2 + 1 for layer in self.layers]
        head = [
            None if isinstance(m, nn.ReLU) else (m.bias, m.weight[:, :, 0, 0].t())
            for m in self.head
        ]
        pad = max(widths) - 1
        for i in range(height):
            to_h_rows = vertical.next_row(i)  # the vertical stack's input to row i, per layer
            if i < start_row:
                continue
            # per layer (B, W, 2C), with the horizontal convolution's bias and class folded in
            to_h = []
            for t, (_, bias, _, _), cond in zip(to_h_rows, weights, conds, strict=True):
                t = t[:, :, 0] + bias[:, None] + (0 if cond is None else cond[1][..., 0])
                to_h.append(t.transpose(1, 2).contiguous())
            # per layer, the row's features so far (B, pad + W, C), zeros left of the image
            feats = [canvas.new_zeros((b, pad + width, c))]
            feats += [canvas.new_zeros((b, pad + width, self.cfg.channels)) for _ in to_h]
            for j in range(width):
                col = pad + j  # column j of the padded rows
                for li, layer in enumerate(self.layers):
                    conv, _, out_w, out_b = weights[li]
                    window = feats[li][:, col - widths[li] + 1 : col + 1].reshape(b, -1)
                    pre = torch.addmm(to_h[li][:, j], window, conv)  # (B, 2C)
                    gated = gate(pre[:, :, None, None])[:, :, 0, 0]
                    base = out_b + feats[li][:, col] if layer.residual else out_b
                    feats[li + 1][:, col] = torch.addmm(base, gated, out_w)
                x = feats[-1][:, col]
                for m in head:
                    x = torch.relu(x) if m is None else torch.addmm(m[0], x, m[1])
                value = self._draw(x, temperature, generator)  # (B, C)
                canvas[:, :, i, j] = value
                feats[0][:, col] = value * 2 - 1
        return canvas

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        class_label: int | None = None,
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1], generated pixel by pixel (softmax `temperature`;
        conditional models draw classes uniformly unless `class_label` is given)."""
        y = self.sample_labels(n, class_label, generator)
        canvas = torch.zeros((n, *self.info.shape), device=self.device)
        return self._generate(canvas, 0, y, temperature, generator)

    @torch.no_grad()
    def complete(
        self,
        x: torch.Tensor,
        rows: int,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        class_label: int | None = None,
    ) -> torch.Tensor:
        """Images x (B, C, H, W) in [0, 1] with their top `rows` rows kept (as the model sees
        them: binarized at 0.5 or on the level grid) and the rest generated, (B, C, H, W)."""
        height = self.info.shape[1]
        if not 0 < rows < height:
            raise UsageError(f"--rows must be between 1 and {height - 1}; got {rows}")
        kept = self.observe(x) if self.cfg.pixels != "bernoulli" else binarize(x, "threshold")
        canvas = torch.zeros_like(x)
        canvas[:, :, :rows] = kept[:, :, :rows]
        y = self.sample_labels(len(x), class_label, generator)
        return self._generate(canvas, rows, y, temperature, generator)


def mnist_preset(run):
    """Binarized 28x28 digits: 8 gated layers of 32 channels, sized for a CPU budget."""
    run.model.pixels = "bernoulli"  # binarized, whatever "auto" decides
    run.model.channels = 32
    run.model.layers = 8
    run.model.head = 128
    run.train.batch_size = 64
    run.train.lr = 1e-3
    run.train.warmup_steps = 100
    run.train.eval_every = 500
    run.train.eval_batches = 20
    return run


PRESETS = {"mnist": mnist_preset}
