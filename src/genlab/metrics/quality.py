"""Sample-quality metrics computed on feature vectors (from the frozen in-house `cnn`)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, D) and b (M, D):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017)."""
    x, y = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_x @ s_y)
    if not np.isfinite(covmean).all():  # nearly singular product: regularize, as is customary
        eps = np.eye(len(s_x)) * 1e-6
        covmean = scipy.linalg.sqrtm((s_x + eps) @ (s_y + eps))
    covmean = covmean.real
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(s_x + s_y - 2 * covmean))
