"""Sample-quality metrics against known answers."""

from __future__ import annotations

import pytest
import torch

from genlab.metrics.quality import frechet_distance


def test_frechet_distance_known_answers():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 8, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, mean shifted by d: the distance is |d|^2
    shift = torch.tensor([1.0, 2.0, 0, 0, 0, 0, 0, 0])
    assert frechet_distance(a, a + shift) == pytest.approx(5.0, abs=1e-6)
    # N(0, I) against N(0, 4I) in 8 dims: tr(I + 4I - 2*2I) = 8
    b = torch.randn(4000, 8, generator=g)
    assert frechet_distance(a, 2 * b) == pytest.approx(8.0, rel=0.05)
