"""Sampling helpers that work for every family with the needed capabilities."""

from __future__ import annotations

import torch

from genlab.errors import UsageError
from genlab.models.base import GenerativeModel, LatentSpace


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of a and b at fractions t: (B, D), (B, D), (K,)
    -> (B, K, D). Falls back to linear interpolation for (nearly) parallel vectors."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1).clamp(-1, 1)).unsqueeze(1)  # (B, 1)
    so = torch.sin(omega)
    t = t.view(1, -1)
    lin = (1 - t).unsqueeze(-1) * a.unsqueeze(1) + t.unsqueeze(-1) * b.unsqueeze(1)
    w_a = torch.where(so > 1e-6, torch.sin((1 - t) * omega) / so, 1 - t)
    w_b = torch.where(so > 1e-6, torch.sin(t * omega) / so, t)
    sph = w_a.unsqueeze(-1) * a.unsqueeze(1) + w_b.unsqueeze(-1) * b.unsqueeze(1)
    return torch.where((so > 1e-6).unsqueeze(-1), sph, lin)


@torch.no_grad()
def interpolate(
    model: GenerativeModel, rows: int, steps: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`rows` latent interpolations of `steps` images each between random prior points:
    (rows * steps, C, H, W), row-major."""
    if not isinstance(model, LatentSpace):
        raise UsageError(f"'{model.family}' has no latent space to interpolate in")
    if steps < 2:
        raise UsageError(f"--interpolate needs at least 2 steps; got {steps}")
    a, b = model.prior(rows, generator=generator), model.prior(rows, generator=generator)
    z = slerp(a, b, torch.linspace(0, 1, steps, device=a.device))  # (rows, steps, D)
    return model.decode(z.flatten(0, 1))
