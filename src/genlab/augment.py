"""Random image views for contrastive learning, as batched tensor operations.

Every function takes a whole batch (B, C, H, W) of images in [0, 1] on any device, draws one
random setting per image from `generator` (or the global random state), and returns a batch of
the same shape, dtype, device and range. `views(x, cfg)` chains them: one random resized crop
and small affine (one `grid_sample`), then blur, colour jitter (RGB only) and noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genlab.errors import UsageError


@dataclass
class ViewConfig:
    """How strongly `views` changes an image (each draw is per image)."""

    crop_scale: tuple[float, float] = (0.4, 1.0)
    """Area of the random resized crop, as a fraction of the image."""
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """Aspect ratio range of the crop (log-uniform)."""
    rotate_degrees: float = 10.0
    """Small affine: rotation drawn in [-d, d] degrees."""
    shear: float = 0.1
    """Small affine: shear drawn in [-s, s]."""
    blur_prob: float = 0.5
    """Probability of a Gaussian blur."""
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    """Blur standard deviation, in pixels of a 28-pixel image (scaled with the image size)."""
    jitter: float = 0.4
    """RGB images: brightness, contrast and saturation factors drawn in [1 - j, 1 + j]."""
    noise_std: float = 0.05
    """Additive Gaussian noise with standard deviation drawn in [0, noise_std]."""


def _uniform(
    n: int, lo: float, hi: float, like: torch.Tensor, g: torch.Generator | None
) -> torch.Tensor:
    u = torch.rand(n, generator=g, device=like.device, dtype=torch.float32)
    return (lo + (hi - lo) * u).to(like.dtype)


def crop_and_affine(
    x: torch.Tensor,
    *,
    scale: tuple[float, float] = (0.4, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    rotate_degrees: float = 0.0,
    shear: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random resized crop (area fraction in `scale`, aspect ratio in `ratio`) composed with
    a small rotation and shear, resampled bilinearly back to (H, W); outside is 0."""
    b = x.shape[0]
    area = _uniform(b, scale[0], scale[1], x, generator)
    log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), x, generator)
    r = log_r.exp()
    sx = (area * r).sqrt().clamp(max=1.0)  # crop width / image width
    sy = (area / r).sqrt().clamp(max=1.0)
    tx = _uniform(b, -1, 1, x, generator) * (1 - sx)  # crop centre, in [-1, 1] coordinates
    ty = _uniform(b, -1, 1, x, generator) * (1 - sy)
    angle = _uniform(b, -rotate_degrees, rotate_degrees, x, generator) * (math.pi / 180)
    k = _uniform(b, -shear, shear, x, generator)
    cos, sin = angle.cos(), angle.sin()
    # output coords -> rotate/shear (about the centre) -> crop box in the input: (B, 2, 3)
    a11, a12 = cos, -sin + k * cos
    a21, a22 = sin, cos + k * sin
    theta = torch.stack(
        [
            torch.stack([sx * a11, sx * a12, tx], dim=1),
            torch.stack([sy * a21, sy * a22, ty], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_blur(
    x: torch.Tensor,
    *,
    sigma: tuple[float, float] = (0.1, 1.0),
    prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blur each image with probability `prob` by a separable Gaussian of standard deviation
    drawn in `sigma` (pixels); the others pass unchanged."""
    b, c, h, w = x.shape
    s = _uniform(b, sigma[0], sigma[1], x, generator)
    keep = _uniform(b, 0, 1, x, generator) >= prob
    radius = max(1, min(math.ceil(3 * sigma[1]), (min(h, w) - 1) // 2))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t[None] / s[:, None]) ** 2)  # (B, K)
    kernel = kernel / kernel.sum(1, keepdim=True)
    kernel = torch.where(keep[:, None], (t == 0).to(x.dtype)[None], kernel)  # identity
    k = kernel.repeat_interleave(c, 0)  # (B*C, K): one filter per image channel
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)  # along rows
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)  # along columns
    return y.view(b, c, h, w)


def colour_jitter(
    x: torch.Tensor, *, strength: float = 0.4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """RGB images: random brightness, contrast and saturation factors in [1 - s, 1 + s], in
    that order, clipped to [0, 1]. Other channel counts pass unchanged."""
    b, c = x.shape[:2]
    if c != 3 or strength <= 0:
        return x
    lo, hi = max(0.0, 1 - strength), 1 + strength
    shape = (b, 1, 1, 1)
    bright = _uniform(b, lo, hi, x, generator).view(shape)
    contrast = _uniform(b, lo, hi, x, generator).view(shape)
    sat = _uniform(b, lo, hi, x, generator).view(shape)
    x = (x * bright).clamp(0, 1)
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)  # (B, 1, H, W)
    x = (x - grey.mean((2, 3), keepdim=True)) * contrast + grey.mean((2, 3), keepdim=True)
    x = x.clamp(0, 1)
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    return ((x - grey) * sat + grey).clamp(0, 1)


def gaussian_noise(
    x: torch.Tensor, *, std: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise of standard deviation drawn in [0, std] per image; clip to [0, 1]."""
    if std <= 0:
        return x
    s = _uniform(x.shape[0], 0, std, x, generator).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + s * noise).clamp(0, 1)


def views(
    x: torch.Tensor, cfg: ViewConfig, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One random view of every image of x (B, C, H, W) in [0, 1]: same shape and range."""
    if x.dim() != 4:
        raise UsageError(f"views need images (B, C, H, W); got shape {list(x.shape)}")
    size = min(x.shape[-2:]) / 28  # blur sigmas are given for 28-pixel images
    x = crop_and_affine(
        x,
        scale=cfg.crop_scale,
        ratio=cfg.crop_ratio,
        rotate_degrees=cfg.rotate_degrees,
        shear=cfg.shear,
        generator=generator,
    )
    if cfg.blur_prob > 0:
        lo, hi = cfg.blur_sigma
        x = gaussian_blur(x, sigma=(lo * size, hi * size), prob=cfg.blur_prob, generator=generator)
    x = colour_jitter(x, strength=cfg.jitter, generator=generator)
    return gaussian_noise(x.clamp(0, 1), std=cfg.noise_std, generator=generator)
