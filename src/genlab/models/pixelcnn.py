"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders"): an exact-likelihood autoregressive model of images in raster order.

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
logit (binarized data) or one logit per intensity level (a categorical over e.g. 256 values).

`nll` is exact: the sum of the per-pixel negative log-probabilities, in nats per image.
Sampling generates pixel by pixel and reuses computation across pixels: each layer keeps its
features of the rows and columns done so far, so a new row costs one row per layer in the
vertical stack (a convolution over the last k//2 + 1 rows of the layer below) and a new pixel
one position per layer in the horizontal stack (over the last k//2 + 1 columns), instead of
passes over everything generated so far. The logits are those of the full pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.distributions import auto_pixel_model, binarize
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel


@dataclass
class Config:
    channels: int = 64
    """Feature maps of each stack in every gated layer."""
    layers: int = 8
    """Gated layers, the first (type A) included."""
    first_kernel: int = 7
    """Kernel size k of the first (type A) layer (odd)."""
    kernel: int = 3
    """Kernel size k of the later (type B) layers (odd)."""
    head: int = 256
    """Width of the 1x1 output head (0: logits straight from the last layer)."""
    pixels: Literal["auto", "bernoulli", "categorical"] = "auto"
    """Per-pixel model: Bernoulli on binarized data, or a categorical over the data's intensity
    levels (256 for 8-bit images, so bits/dim compare with other families); auto: bernoulli for
    nearly binary data (e.g. MNIST), else categorical (genlab.distributions.nearly_binary). The
    run's config records the choice."""
    binarize: Literal["dynamic", "threshold"] = "dynamic"
    """For `bernoulli`: a fresh random draw of each pixel every pass, or pixel > 0.5."""
    conditional: bool = False
    """Class-conditional (needs labelled data): `genlab sample RUN --class K`."""

    def validate(self) -> None:
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

    def __init__(self, c_in: int, c: int, k: int, mask_type: Literal["A", "B"], classes: int):
        super().__init__()
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
        out = self.h_out(gate(pre))
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
        "Gated PixelCNN (vertical + horizontal stacks); exact NLL; pixel-by-pixel sampling "
        "and completion"
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
        self.k_out = 1 if cfg.pixels == "bernoulli" else info.record.levels  # logits per channel
        classes = info.num_classes if cfg.conditional else 0
        self.layers = nn.ModuleList(
            [GatedLayer(c, cfg.channels, cfg.first_kernel, "A", classes)]
            + [
                GatedLayer(cfg.channels, cfg.channels, cfg.kernel, "B", classes)
                for _ in range(cfg.layers - 1)
            ]
        )
        head: list[nn.Module] = [nn.ReLU()]
        width = cfg.channels
        if cfg.head:
            head += [nn.Conv2d(width, cfg.head, 1), nn.ReLU()]
            width = cfg.head
        head.append(nn.Conv2d(width, c * self.k_out, 1))
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

    def horizontal_logits(
        self, x: torch.Tensor, to_h: list[torch.Tensor], conds: list
    ) -> torch.Tensor:
        """Logits (B, C, K, H, W) from the image (B, C, H, W) and the vertical inputs."""
        h = x * 2 - 1
        for layer, t, cond in zip(self.layers, to_h, conds, strict=True):
            h = layer.horizontal(h, t, cond)
        out = self.head(h)  # (B, C * K, H, W)
        b, _, height, width = out.shape
        return out.view(b, -1, self.k_out, height, width)

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C, K, H, W) of every pixel given the pixels before it (K = 1: Bernoulli)."""
        conds = self._conds(y)
        return self.horizontal_logits(x, self.vertical_inputs(x, conds), conds)

    # likelihood -------------------------------------------------------------------------------
    def observe(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The data as the model sees it: binarized for `bernoulli`, on the level grid for
        `categorical`."""
        if self.cfg.pixels == "categorical":
            top = self.info.record.levels - 1
            return torch.round(x * top) / top
        return binarize(x, self.cfg.binarize, generator)

    def _nll(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Exact negative log-likelihood (B,) in nats of observed images x."""
        logits = self.logits(x, y)  # (B, C, K, H, W)
        if self.cfg.pixels == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(logits[:, :, 0], x, reduction="none")
        else:
            target = torch.round(x * (self.info.record.levels - 1)).long()  # (B, C, H, W)
            nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
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
        self, logits: torch.Tensor, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Pixel values (B, C) in [0, 1] drawn from logits (B, C, K)."""
        if self.cfg.pixels == "bernoulli":
            p = torch.sigmoid(logits[..., 0] / temperature)
            return torch.bernoulli(p, generator=generator)
        probs = torch.softmax(logits / temperature, dim=-1)  # (B, C, K)
        idx = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(probs.shape[:2])
        return idx.to(probs.dtype) / (self.info.record.levels - 1)

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
        conds = self._conds(y)
        b, c, height, width = canvas.shape
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
                value = self._draw(x.view(b, c, self.k_out), temperature, generator)  # (B, C)
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
        kept = self.observe(x) if self.cfg.pixels == "categorical" else binarize(x, "threshold")
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
