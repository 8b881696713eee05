"""Noise schedules: the forward process q(x_t | x_0) of a diffusion model.

A schedule holds its tensors as (non-persistent) buffers, so they move with the model between
devices but are rebuilt from the config rather than stored in checkpoints. Timesteps are indices
t = 0 .. T-1; x_t has been noised t + 1 times, and t = -1 stands for the clean data x_0
(alpha_bar(-1) = 1), which lets the last reverse step land exactly on the data.

- `linear`: betas from 1e-4 to 0.02 over 1000 steps (Ho et al. 2020), rescaled by 1000 / T for
  other step counts (Nichol & Dhariwal 2021).
- `cosine`: alpha_bar(t) = cos^2(((t / T + s) / (1 + s)) pi / 2), s = 0.008, betas clipped at
  0.999 (Nichol & Dhariwal 2021).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genlab.errors import UsageError

SCHEDULES = ("linear", "cosine")


def linear_betas(timesteps: int) -> torch.Tensor:
    """Ho et al.'s linear betas, (T,) float64."""
    scale = 1000 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine betas, (T,) float64."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


def _index(t: int | torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(t, device=device, dtype=torch.long)


def _bcast(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) -> (B, 1, 1, ...) to broadcast against a (B, ...) tensor of `ndim` dimensions."""
    return v.reshape(-1, *([1] * (ndim - 1))) if v.dim() else v


class NoiseSchedule(nn.Module):
    """The forward process for given betas; every method takes its timesteps explicitly."""

    def __init__(self, betas: torch.Tensor) -> None:
        super().__init__()
        betas = betas.to(torch.float64)
        if betas.dim() != 1 or not ((betas > 0) & (betas < 1)).all():
            raise UsageError("noise schedule betas must be a 1-d tensor of values in (0, 1)")
        alpha_bar = torch.cumprod(1 - betas, 0)
        # index 0 is t = -1 (clean data), so alpha_bar(t) = padded[t + 1]
        padded = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar])
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alpha_bar_padded", padded.float(), persistent=False)

    @property
    def timesteps(self) -> int:
        return int(self.betas.numel())

    def alpha_bar(self, t: int | torch.Tensor) -> torch.Tensor:
        """Cumulative product of (1 - beta) up to t; 1 at t = -1. Shape of t."""
        return self.alpha_bar_padded[_index(t, self.betas.device) + 1]

    def add_noise(
        self, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor
    ) -> torch.Tensor:
        """A draw of x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)."""
        a = _bcast(self.alpha_bar(t), x0.dim())
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def velocity(
        self, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor
    ) -> torch.Tensor:
        """The v target of Salimans & Ho (2022): sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0."""
        a = _bcast(self.alpha_bar(t), x0.dim())
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def target(
        self, objective: str, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor
    ) -> torch.Tensor:
        """What a network trained with `objective` (eps, x0 or v) should output at x_t."""
        if objective == "eps":
            return noise
        if objective == "x0":
            return x0
        return self.velocity(x0, noise, t)

    def to_x0_eps(
        self, objective: str, x_t: torch.Tensor, t: int | torch.Tensor, output: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output read as (predicted x_0, predicted noise) under `objective`."""
        a = _bcast(self.alpha_bar(t), x_t.dim())
        sa, s1a = a.sqrt(), (1 - a).sqrt()
        if objective == "eps":
            return (x_t - s1a * output) / sa, output
        if objective == "x0":
            return output, (x_t - sa * output) / s1a
        return sa * x_t - s1a * output, s1a * x_t + sa * output  # v

    def eps_from_x0(
        self, x_t: torch.Tensor, t: int | torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        """The noise that takes x_0 to x_t at step t."""
        a = _bcast(self.alpha_bar(t), x_t.dim())
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def posterior(
        self,
        x0: torch.Tensor,
        x_t: torch.Tensor,
        t: int | torch.Tensor,
        t_prev: int | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t_prev} | x_t, x_0) (t_prev = t - 1 unless given, < t).

        With skipped steps the effective beta is 1 - alpha_bar_t / alpha_bar_{t_prev}, which is
        what lets ancestral sampling run on a subsequence of the timesteps.
        """
        if t_prev is None:
            t_prev = _index(t, x_t.device) - 1
        a_t = _bcast(self.alpha_bar(t), x_t.dim())
        a_p = _bcast(self.alpha_bar(t_prev), x_t.dim())
        beta = 1 - a_t / a_p
        mean = (a_p.sqrt() * beta * x0 + (a_t / a_p).sqrt() * (1 - a_p) * x_t) / (1 - a_t)
        var = beta * (1 - a_p) / (1 - a_t)
        return mean, var


def make_schedule(name: str, timesteps: int) -> NoiseSchedule:
    """The named schedule (`linear` or `cosine`) over `timesteps` steps."""
    if name == "linear":
        return NoiseSchedule(linear_betas(timesteps))
    if name == "cosine":
        return NoiseSchedule(cosine_betas(timesteps))
    raise UsageError(f"unknown noise schedule '{name}'; use one of: {', '.join(SCHEDULES)}")
