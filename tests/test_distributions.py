"""The shared distribution helpers that families build their likelihoods on."""

import torch

from genlab.distributions import binarize


def test_threshold_binarization_keeps_pixels_above_one_half():
    x = torch.tensor([0.0, 0.25, 0.5, 0.51, 1.0], dtype=torch.float64)
    out = binarize(x, "threshold")
    assert out.dtype == torch.float64
    assert out.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_dynamic_binarization_draws_from_the_generator():
    x = torch.full((2000,), 0.3)
    a = binarize(x, "dynamic", torch.Generator().manual_seed(1))
    b = binarize(x, "dynamic", torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # the generator alone decides the draw
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(a.mean().item() - 0.3) < 0.05  # Bernoulli(0.3): sd of the mean ~0.01
    ends = torch.tensor([0.0, 1.0])
    assert binarize(ends, "dynamic").tolist() == [0.0, 1.0]  # 0 and 1 stay as they are
