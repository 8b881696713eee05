"""The exponential moving average (EMA) of a model's weights, with a warm-up.

A fixed decay d weights the first steps' (random) weights by d^n for a long time: with d = 0.999
the EMA of a 300-step run is still mostly its initialization, and samples from it are noise.
As the EMA of diffusion codebases does (diffusers' EMAModel), the decay of the update after n
averaged steps is min(d, (1 + n) / (10 + n)): it averages about the last tenth of the steps
early on and reaches d after about 10 / (1 - d) steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.swa_utils import AveragedModel

WARMUP = 10
"""The warm-up's constant: the decay after n averaged steps is at most (1 + n) / (WARMUP + n)."""


def ema_decay_at(decay: float, n: int) -> float:
    """The decay of the EMA update that follows n averaged steps (n >= 1; the first step's
    weights are copied)."""
    return min(decay, (1 + n) / (WARMUP + n))


def _update(decay: float) -> Callable[[list, list, torch.Tensor], None]:
    @torch.no_grad()
    def update(ema: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        d = ema_decay_at(decay, int(n))
        if torch.is_floating_point(ema[0]) or torch.is_complex(ema[0]):
            torch._foreach_lerp_(ema, current, 1 - d)
        else:  # integer buffers (e.g. batch norm's step count)
            for e, c in zip(ema, current, strict=True):
                e.copy_(e * d + c * (1 - d))

    return update


def ema_model(model: torch.nn.Module, decay: float) -> AveragedModel:
    """The EMA of `model`'s parameters and buffers, updated by `update_parameters(model)` with
    the warm-up decay; `n_averaged` counts the steps averaged."""
    return AveragedModel(model, multi_avg_fn=_update(decay), use_buffers=True)


def ema_lag_warning(decay: float, averaged: int) -> str | None:
    """A one-line warning when EMA weights of `decay` have averaged fewer steps than the
    about 1 / (1 - decay) they average over; None otherwise."""
    if decay <= 0:
        return None
    horizon = round(1 / (1 - decay))
    if averaged >= horizon:
        return None
    return (
        f"the EMA weights averaged only {averaged} steps (train.ema_decay={decay:g} averages "
        f"over about {horizon}): if samples look like noise, use --no-ema or train longer"
    )
