"""Reverse-process samplers as pure step functions.

Each step takes the current x_t, the timestep it is at and the one it goes to, and the model's
prediction (x_0, eps) at x_t; it keeps no state, so one schedule can serve any number of
samplers at once. `sample_loop` strings the steps together for a `predict(x_t, t)` function.

- `ddpm_step`: ancestral sampling from q(x_{t_prev} | x_t, x_0 = prediction) (Ho et al. 2020);
  with skipped steps it uses the effective beta of the pair (Nichol & Dhariwal 2021).
- `ddim_step`: DDIM (Song et al. 2021) with stochasticity `eta` (0: deterministic; 1: the
  ancestral variance). With eta = 0 the step also runs backwards (t_next > t): DDIM inversion.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genlab.diffusion.schedules import NoiseSchedule
from genlab.distributions import randn_like
from genlab.errors import UsageError

SAMPLERS = ("ddpm", "ddim")

Predict = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
"""predict(x_t, t) -> (predicted x_0, predicted noise), both shaped like x_t."""


def spaced_timesteps(timesteps: int, steps: int) -> list[int]:
    """`steps` timesteps evenly spread over 0 .. T-1, descending, starting at T - 1."""
    if not 1 <= steps <= timesteps:
        raise UsageError(f"--sample-steps must be between 1 and the model's {timesteps} timesteps")
    ts = torch.linspace(0, timesteps - 1, steps, dtype=torch.float64).round().long()
    return sorted({int(t) for t in ts}, reverse=True)


def ddpm_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: int,
    t_prev: int,
    x0: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """x_{t_prev} drawn from q(x_{t_prev} | x_t, x_0); exactly the posterior mean at t_prev = -1."""
    mean, var = schedule.posterior(x0, x_t, t, t_prev)
    return mean + var.sqrt() * noise


def ddim_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: int,
    t_next: int,
    x0: torch.Tensor,
    eps: torch.Tensor,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """The DDIM update from t to t_next (Song et al. 2021, eq. 12)."""
    a_t, a_n = schedule.alpha_bar(t), schedule.alpha_bar(t_next)
    sigma = torch.zeros_like(a_t)
    if eta > 0 and t_next < t:
        sigma = eta * ((1 - a_n) / (1 - a_t) * (1 - a_t / a_n)).sqrt()
    x = a_n.sqrt() * x0 + (1 - a_n - sigma**2).clamp_min(0).sqrt() * eps
    if eta > 0 and t_next < t:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs noise")
        x = x + sigma * noise
    return x


def renoise(
    schedule: NoiseSchedule, x: torch.Tensor, t_from: int, t_to: int, noise: torch.Tensor
) -> torch.Tensor:
    """A draw of x_{t_to} ~ q(x_{t_to} | x_{t_from}) for t_to > t_from (forward jump)."""
    ratio = schedule.alpha_bar(t_to) / schedule.alpha_bar(t_from)
    return ratio.sqrt() * x + (1 - ratio).sqrt() * noise


def step(
    sampler: str,
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: int,
    t_prev: int,
    x0: torch.Tensor,
    eps: torch.Tensor,
    eta: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One reverse step of the named sampler (noise drawn from `generator` when needed)."""
    needs_noise = t_prev >= 0 and (sampler == "ddpm" or eta > 0)
    noise = randn_like(x_t, generator) if needs_noise else torch.zeros_like(x_t)
    if sampler == "ddpm":
        return ddpm_step(schedule, x_t, t, t_prev, x0, noise)
    return ddim_step(schedule, x_t, t, t_prev, x0, eps, eta, noise)


def sample_loop(
    predict: Predict,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    timesteps: list[int],
    *,
    sampler: str = "ddim",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run the reverse process from x_T through the descending `timesteps` down to x_0."""
    x = x_T
    for t, t_prev in zip(timesteps, [*timesteps[1:], -1], strict=True):
        x0, eps = predict(x, t)
        x = step(sampler, schedule, x, t, t_prev, x0, eps, eta, generator)
    return x


def ddim_invert(
    predict: Predict,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    timesteps: list[int],
    iterations: int = 4,
) -> torch.Tensor:
    """Deterministic DDIM inversion: data x_0 -> the x_T that eta = 0 sampling maps back to it.

    `timesteps` descending, as given to `sample_loop`. Each upward step solves for the point
    x_up from which the eta = 0 step lands on the current x, by fixed-point iteration on
    x_up = sqrt(a_up) x0(x, eps) + sqrt(1 - a_up) eps, eps = predict(x_up); one iteration is the
    usual approximation (the prediction taken at the current point), more make it exact.
    """
    up = list(reversed(timesteps))
    x = x0
    for t_from, t_to in zip([-1, *up[:-1]], up, strict=True):
        a_from, a_to = schedule.alpha_bar(t_from), schedule.alpha_bar(t_to)
        guess = x
        for _ in range(iterations):
            _, eps = predict(guess, t_to)
            x0_implied = (x - (1 - a_from).sqrt() * eps) / a_from.sqrt()
            guess = a_to.sqrt() * x0_implied + (1 - a_to).sqrt() * eps
        x = guess
    return x
