"""Distribution math shared by families: likelihood units, pixel likelihoods (VAE decoder,
diffusion t=0), and seeded Gaussian draws."""

from __future__ import annotations

import math
from typing import Any

import torch


def bits_per_dim(nats_per_example: float, dims: int) -> float:
    """Negative log-likelihood in nats per example -> bits per dimension."""
    return nats_per_example / (dims * math.log(2))


def discretized_gaussian_log_prob(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, levels: int
) -> torch.Tensor:
    """Log-probability of x (on the grid k/(levels-1)) under a Gaussian integrated over its bin."""
    half = 0.5 / (levels - 1)
    inv = torch.exp(-log_scale)
    upper, lower = (x + half - mean) * inv, (x - half - mean) * inv
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)
    mass = (torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp_min(1e-12)
    # far in a tail the difference underflows: use density x bin width there instead
    log_mid = torch.where(
        mass > 1e-5,
        mass.log(),
        -0.5 * ((x - mean) * inv) ** 2
        - 0.5 * math.log(2 * math.pi)
        - log_scale
        + math.log(2 * half),
    )
    return torch.where(x < half, log_cdf_upper, torch.where(x > 1 - half, log_sf_lower, log_mid))


def binarize(
    x: torch.Tensor, how: str = "threshold", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pixels in [0, 1] -> 0/1 of the same dtype: `threshold` keeps pixel > 0.5; `dynamic` draws
    Bernoulli(pixel) afresh on every call (the standard protocol of binarized-MNIST
    likelihoods), from `generator`."""
    if how == "threshold":
        return (x > 0.5).to(x.dtype)
    return torch.bernoulli(x, generator=generator)


def randn_like(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise of `like`'s shape, device and dtype, drawn from `generator`
    (torch.randn_like takes no generator)."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def class_histogram(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Fractions (num_classes,) of labels in each class."""
    counts = torch.bincount(labels.long().cpu(), minlength=num_classes).double()
    return counts / counts.sum().clamp_min(1)


def class_coverage(
    labels: torch.Tensor, num_classes: int, reference: torch.Tensor | None = None
) -> dict[str, Any]:
    """The class histogram of `labels` (e.g. a classifier's predictions on generated images),
    how many classes appear in it and, given `reference` labels (the data's), the KL divergence
    KL(histogram || reference histogram) in nats: 0 when the proportions match, log K for a
    single class against K balanced ones."""
    hist = class_histogram(labels, num_classes)
    out: dict[str, Any] = {
        "histogram": [round(float(v), 6) for v in hist],
        "classes_covered": int((hist > 0).sum()),
    }
    if reference is not None:
        ref = class_histogram(reference, num_classes)
        present = hist > 0
        out["class_kl"] = float((hist[present] * (hist[present] / ref[present]).log()).sum())
    return out


NEARLY_BINARY = 0.2
"""Image data whose grey fraction (genlab.data.image.grey_fraction: the share of pixel values
strictly between 5% and 95% of the range) is below this is nearly binary: a Bernoulli pixel
model fits it (the fractions of the built-in data are in docs/families.md)."""


def nearly_binary(grey: float | None) -> bool:
    """Whether image data with this grey fraction suits a Bernoulli pixel model (unknown: yes,
    the choice of runs written before the fraction was measured)."""
    return grey is None or grey < NEARLY_BINARY


def auto_pixel_model(
    info: Any, setting: str, value: str, *, binary: str, discrete: str
) -> tuple[str, str]:
    """The pixel model a setting with value "auto" resolves to for image data `info`, and the
    run-summary line that says why: `binary` for nearly binary data, else `discrete`."""
    grey = getattr(info.record, "grey_fraction", None)
    if value != "auto":
        return value, ""
    chosen = binary if nearly_binary(grey) else discrete
    why = "unknown grey fraction" if grey is None else f"{grey:.0%} of pixel values are grey"
    return chosen, (
        f"model.{setting}={chosen} (auto: {why}; below {NEARLY_BINARY:.0%} the data counts as "
        f"nearly binary and gets {binary}, else {discrete})"
    )
