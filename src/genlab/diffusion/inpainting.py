"""Inpainting with an unconditional diffusion model: replacement plus RePaint resampling.

At every reverse step the known pixels are replaced by the data noised to the same level (the
"replacement" method of Song et al. 2021), and the step is repeated `rounds` times, jumping
back up one step with fresh forward noise in between (Lugmayr et al. 2022, jump length 1), so
the generated region has time to agree with the known one. The known pixels of the result are
the given ones exactly.
"""

from __future__ import annotations

import torch

from genlab.diffusion import samplers
from genlab.diffusion.schedules import NoiseSchedule
from genlab.distributions import randn_like


def inpaint_loop(
    predict: samplers.Predict,
    schedule: NoiseSchedule,
    known: torch.Tensor,
    keep: torch.Tensor,
    timesteps: list[int],
    *,
    sampler: str = "ddim",
    eta: float = 0.0,
    rounds: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images (B, C, H, W) that equal `known` where `keep` (bool, broadcastable) is true and are
    generated elsewhere; `timesteps` descending as for `samplers.sample_loop`."""
    x = randn_like(known, generator)  # x_T
    x_prev = x
    for t, t_prev in zip(timesteps, [*timesteps[1:], -1], strict=True):
        for r in range(rounds):
            x0, eps = predict(x, t)
            x_prev = samplers.step(sampler, schedule, x, t, t_prev, x0, eps, eta, generator)
            known_prev = known
            if t_prev >= 0:
                known_prev = schedule.add_noise(known, randn_like(known, generator), t_prev)
            x_prev = torch.where(keep, known_prev, x_prev)
            if r < rounds - 1:  # back up to t with fresh noise and take the step again
                x = samplers.renoise(schedule, x_prev, t_prev, t, randn_like(known, generator))
        x = x_prev
    return torch.where(keep, known, x)
