"""Distribution math shared by families: likelihood units, pixel likelihoods (VAE decoder,
diffusion t=0, PixelCNN++'s logistic mixture), and seeded Gaussian draws."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


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


def logistic_mixture_size(channels: int, mixtures: int) -> int:
    """Parameters per pixel of a discretized logistic mixture over `channels` channels: per
    component a logit, a mean and a log-scale per channel, and one coefficient per pair of
    channels (c, d < c) by which channel c's mean follows channel d's value."""
    return mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)


def _logistic_mixture_parts(
    params: torch.Tensor, channels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split params (B, P, ...) into logits (B, K, ...), means and log-scales (B, C, K, ...) and
    pair coefficients (B, C(C-1)/2, K, ...)."""
    per = logistic_mixture_size(channels, 1)
    k = params.shape[1] // per
    rest = params.shape[2:]
    logits = params[:, :k]
    means = params[:, k : k + channels * k].reshape(len(params), channels, k, *rest)
    log_scales = params[:, k + channels * k : k + 2 * channels * k].reshape(
        len(params), channels, k, *rest
    )
    coeffs = torch.tanh(params[:, k + 2 * channels * k :]).reshape(
        len(params), per - 1 - 2 * channels, k, *rest
    )
    return logits, means, log_scales.clamp_min(-7.0), coeffs


def _coupled_means(means: torch.Tensor, coeffs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Means (B, C, K, ...) with channel c's shifted by coefficient x value of every channel
    d < c; x (B, C, 1, ...) in [-1, 1]."""
    out, pair = [means[:, :1]], 0
    for c in range(1, means.shape[1]):
        m = means[:, c : c + 1]
        for d in range(c):
            m = m + coeffs[:, pair : pair + 1] * x[:, d : d + 1]
            pair += 1
        out.append(m)
    return torch.cat(out, dim=1)


def discretized_logistic_mixture_log_prob(
    params: torch.Tensor, x: torch.Tensor, levels: int
) -> torch.Tensor:
    """Log-probability (B, H, W) of every pixel of x (B, C, H, W) (values on the grid
    k/(levels-1)) under the discretized logistic mixture with params (B, P, H, W) (PixelCNN++,
    Salimans et al. 2017): each level's mass is the logistic CDF over its bin, the first and
    last bins take the tails, so the masses over the levels sum to one."""
    channels = x.shape[1]
    logits, means, log_scales, coeffs = _logistic_mixture_parts(params, channels)
    xs = (x * 2 - 1).unsqueeze(2)  # (B, C, 1, H, W) in [-1, 1]
    centred = xs - _coupled_means(means, coeffs, xs)
    inv = torch.exp(-log_scales)
    half = 1.0 / (levels - 1)  # half a bin in [-1, 1] units
    plus, minus = inv * (centred + half), inv * (centred - half)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the first level's mass
    log_sf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus)): the last level's
    mass = (torch.sigmoid(plus) - torch.sigmoid(minus)).clamp_min(1e-12)
    mid = inv * centred
    # far in a tail the difference underflows: density at the bin's centre x bin width instead
    log_mid = torch.where(
        mass > 1e-5,
        mass.log(),
        mid - log_scales - 2 * F.softplus(mid) + math.log(2 * half),
    )
    first, last = xs < -1 + half, xs > 1 - half
    log_p = torch.where(first, log_cdf_plus, torch.where(last, log_sf_minus, log_mid))
    return torch.logsumexp(log_p.sum(1) + torch.log_softmax(logits, dim=1), dim=1)


def sample_logistic_mixture(
    params: torch.Tensor,
    channels: int,
    levels: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One pixel (B, C) on the grid k/(levels-1) per row of params (B, P): a component drawn
    from the mixture weights (logits / temperature), then each channel in order from its
    logistic (scale x temperature), its mean shifted by the channels drawn before it."""
    logits, means, log_scales, coeffs = _logistic_mixture_parts(params, channels)
    probs = torch.softmax(logits / temperature, dim=1)
    k = torch.multinomial(probs, 1, generator=generator)  # (B, 1)

    def pick(t: torch.Tensor) -> torch.Tensor:  # (B, N, K) -> (B, N) at component k
        return t.gather(2, k[:, None, :].expand(-1, t.shape[1], 1))[..., 0]

    mean, scale, coeff = pick(means), pick(log_scales).exp() * temperature, pick(coeffs)
    u = torch.rand(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    noise = torch.log(u.clamp(1e-5, 1 - 1e-5)) - torch.log1p(-u.clamp(1e-5, 1 - 1e-5))
    values, pair = [], 0
    for c in range(channels):
        m = mean[:, c]
        for d in range(c):
            m = m + coeff[:, pair] * values[d]
            pair += 1
        v = (m + scale[:, c] * noise[:, c]).clamp(-1, 1)
        values.append(torch.round((v + 1) / 2 * (levels - 1)) / (levels - 1) * 2 - 1)
    return (torch.stack(values, dim=1) + 1) / 2


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
