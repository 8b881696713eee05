"""Sample-quality metrics against known answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import FEATURE_STEPS, tiny_overrides
from genlab.config import apply_overrides
from genlab.data import load_dataset
from genlab.judges import judge
from genlab.metrics.features import classifier_accuracy
from genlab.metrics.quality import (
    class_coverage,
    conditional_accuracy,
    density_coverage,
    frechet_distance,
    kernel_inception_distance,
    nearest_neighbour_distances,
    precision_recall,
    sample_quality,
)
from genlab.run import build_model
from genlab.runconfig import default_config


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


def test_kid_is_unbiased_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(600, 8, generator=g), torch.randn(600, 8, generator=g)
    same, std = kernel_inception_distance(a, b, subset_size=300, seed=0)
    assert abs(same) < max(3 * std, 1e-3)  # unbiased: about 0 (either sign) for one distribution
    shifted, _ = kernel_inception_distance(a, b + 1.0, subset_size=300, seed=0)
    further, _ = kernel_inception_distance(a, b + 2.0, subset_size=300, seed=0)
    assert 0.05 < shifted < further
    assert kernel_inception_distance(a, b, seed=3) == kernel_inception_distance(a, b, seed=3)


def test_precision_recall_density_coverage_known_answers():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(500, 4, generator=g)
    assert precision_recall(a, a) == {"precision": 1.0, "recall": 1.0}
    assert density_coverage(a, a)["coverage"] == 1.0
    far = a + 100.0
    assert precision_recall(a, far) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(a, far) == {"density": 0.0, "coverage": 0.0}
    # a generator stuck in one corner of the data: faithful (precision) but not diverse (recall)
    corner = a[a[:, 0] > 1.0]
    pr = precision_recall(a, corner)
    assert pr["precision"] == 1.0 and pr["recall"] < 0.5
    assert density_coverage(a, corner)["coverage"] < 0.5


def test_class_coverage_conditional_accuracy_and_nearest_neighbours():
    one_class = class_coverage(torch.full((50,), 3), 10, reference=torch.arange(100) % 10)
    assert one_class["classes_covered"] == 1
    assert one_class["class_kl"] == pytest.approx(math.log(10))  # one class vs ten equal ones
    balanced = class_coverage(torch.arange(40) % 10, 10, reference=torch.arange(100) % 10)
    assert balanced["classes_covered"] == 10 and balanced["class_kl"] == pytest.approx(0.0)
    assert conditional_accuracy(torch.tensor([1, 2, 3, 3]), torch.tensor([1, 2, 3, 4])) == 0.75
    train = torch.randn(300, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(nearest_neighbour_distances(train[:20], train), torch.zeros(20).double())
    assert (nearest_neighbour_distances(train[:20] + 0.5, train) > 0).all()


def test_sample_quality_against_real_images(feature_cache):
    """Real test images scored as if generated reproduce the real-vs-real baseline, and copies
    of training images are flagged by the memorization check."""
    data = load_dataset("digits")
    cfg = apply_overrides(default_config("vae"), tiny_overrides("vae"))
    model = build_model("vae", cfg.model, data.info).eval()
    judge("digits", steps=FEATURE_STEPS)  # trained once and cached: sample_quality loads it
    n = len(data.splits["test"])
    test_images = data.batch("test", torch.arange(n))["x"]
    q = sample_quality(model, data, samples=n, feature_steps=FEATURE_STEPS, images=test_images)
    assert q["fd"] == pytest.approx(q["fd_real"], abs=1e-6)
    for key in ("precision", "recall", "coverage", "classes_covered", "class_kl", "nn_distance"):
        assert q[key] == pytest.approx(q[f"{key}_real"]), key
    assert q["memorization_ratio"] == pytest.approx(1.0)
    assert 0 < q["feature_extractor_test_accuracy"] <= 1 and q["real_images"] == n
    copies = data.batch("train", torch.arange(100))["x"]
    q = sample_quality(model, data, samples=100, feature_steps=FEATURE_STEPS, images=copies)
    assert q["nn_distance"] == pytest.approx(0.0, abs=1e-6) and q["memorization_ratio"] < 1e-6
    generated = sample_quality(model, data, samples=50, feature_steps=FEATURE_STEPS, seed=4)
    assert generated["samples"] == 50 and generated["sample_seed"] == 4
    assert generated["sample_ms_per_image"] > 0 and generated["fd"] > generated["fd_real"]


def test_feature_extractor_keeps_its_test_accuracy(feature_cache):
    extractor = judge("digits", steps=FEATURE_STEPS)
    data = load_dataset("digits")
    metas = [json.loads(m.read_text()) for m in feature_cache.glob("features/*/meta.json")]
    (meta,) = [  # other tests may have cached judges of other data or lengths beside it
        m
        for m in metas
        if m.get("fingerprint") == data.info.fingerprint and m.get("steps") == FEATURE_STEPS
    ]
    recorded = meta["test_accuracy"]
    assert extractor.test_accuracy == recorded == classifier_accuracy(extractor, data)
    assert 0.1 < recorded <= 1.0  # better than chance among 10 classes
