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
from typing import Any

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


def sampling_options(
    cfg: Any, sampler: str | None, sample_steps: int | None, eta: float | None
) -> tuple[str, list[int], float]:
    """The sampler, its descending timesteps and eta asked for, each defaulting to the model
    config's `sampler`, `sample_steps` and `eta` (over its `timesteps`); a UsageError for a
    value out of range."""
    sampler = cfg.sampler if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler must be one of {', '.join(SAMPLERS)}")
    eta = cfg.eta if eta is None else eta
    if eta < 0:
        raise UsageError(f"--eta must be 0 or more; got {eta}")
    steps = cfg.sample_steps if sample_steps is None else sample_steps
    return sampler, spaced_timesteps(cfg.timesteps, steps), eta


def guided(
    net: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
    read: Callable[[torch.Tensor, int, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    labels: torch.Tensor | None,
    null_label: int,
    scale: float,
) -> Predict:
    """predict(x_t, t) of a network `net(x_t, t (B,), labels)` whose output `read(x_t, t, out)`
    turns into (x_0, eps), under classifier-free guidance at `scale` for `labels` (B,).

    Scale 1 calls only the conditional network, 0 only the unconditional one (labels
    `null_label`); otherwise both in one batch, combined as out_u + scale (out_c - out_u) before
    reading (the objectives are affine in the output, so this is guidance on eps)."""

    def predict(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        tt = torch.full((len(x),), t, device=x.device)
        if labels is None or scale == 1:
            return read(x, t, net(x, tt, labels))
        null = torch.full_like(labels, null_label)
        if scale == 0:
            return read(x, t, net(x, tt, null))
        both = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, null]))
        out_c, out_u = both.chunk(2)
        return read(x, t, out_u + scale * (out_c - out_u))

    return predict


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
