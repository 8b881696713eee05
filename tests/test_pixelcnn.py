"""PixelCNN (gated and PixelCNN++ networks): causal masks with no blind spot, an exact and
normalized likelihood (Bernoulli, categorical, discretized logistic mixture), pixel-by-pixel
sampling that matches the full pass, completion, and the command line."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from conftest import TINY, run_cli, tiny_overrides
from genlab.config import apply_overrides
from genlab.data import DataInfo, load_dataset
from genlab.data.image import ImageRecord
from genlab.distributions import (
    discretized_logistic_mixture_log_prob,
    logistic_mixture_size,
    sample_logistic_mixture,
)
from genlab.errors import UsageError
from genlab.metrics.evaluate import evaluate
from genlab.models.pixelcnn import Config, PixelCNN
from genlab.run import build_model
from genlab.runconfig import default_config


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def image_info(shape, levels=256, classes=0) -> DataInfo:
    return DataInfo(
        source="made-up",
        kind="image",
        shape=list(shape),
        num_classes=classes,
        task="classification" if classes else "none",
        record=ImageRecord(levels=levels),
    )


def dependency(model: PixelCNN, shape) -> torch.Tensor:
    """depends[q, p]: whether the outputs at raster position q change with the input at p."""
    c, h, w = shape
    x = torch.rand(1, *shape, requires_grad=True)
    outputs = model.outputs(x)  # (1, P, H, W)
    rows = []
    for q in range(h * w):
        (grad,) = torch.autograd.grad(outputs[..., q // w, q % w].sum(), x, retain_graph=True)
        rows.append(grad.abs().sum(1).flatten() > 0)  # any channel of each input pixel
    return torch.stack(rows)


PP = {"arch": "pp", "channels": 8, "resnets": 2, "scales": 3}


@pytest.mark.parametrize(
    ("shape", "pixels", "arch"),
    [
        ((1, 8, 8), "bernoulli", {}),
        ((3, 5, 5), "categorical", {}),
        ((1, 8, 8), "bernoulli", PP),
        ((3, 5, 5), "logistic", PP),
        ((1, 7, 6), "categorical", PP),
    ],
)
def test_each_pixel_depends_on_exactly_the_pixels_before_it(shape, pixels, arch):
    """Changing pixel p changes no output at positions <= p (all channels), and with enough
    layers every output sees every earlier pixel: no blind spot. The pp network's strided
    and transposed shifted convolutions keep this at even and odd sizes."""
    torch.manual_seed(0)
    cfg = Config(**{"channels": 8, "layers": 5, "head": 8, "pixels": pixels, **arch})
    depends = dependency(PixelCNN(cfg, image_info(shape, levels=4)), shape)
    n = shape[1] * shape[2]
    before = torch.ones(n, n, dtype=torch.bool).tril(-1)  # before[q, p] = p < q
    assert torch.equal(depends, before)


def test_row_by_row_sampling_computes_the_full_pass_logits():
    torch.manual_seed(0)
    model = PixelCNN(Config(channels=8, layers=4, head=8), image_info((1, 6, 7)))
    x = torch.rand(2, 1, 6, 7)
    full = model.outputs(x)  # (2, 1, 6, 7)
    conds = model._conds(None)
    for i, j in [(0, 0), (2, 3), (5, 6), (4, 0)]:
        to_h = [t[:, :, i : i + 1] for t in model.vertical_inputs(x[:, :, : i + 1], conds)]
        part = model.horizontal_outputs(
            x[:, :, i : i + 1, : j + 1], [t[..., : j + 1] for t in to_h], conds
        )
        assert torch.allclose(part[..., 0, j], full[..., i, j], atol=1e-5)


def test_the_pp_network_computes_row_i_from_the_rows_up_to_it():
    """pp sampling reruns the network on rows 0..i only: row i's outputs equal the full pass's
    (at every row of an odd-sized image, through three resolutions)."""
    torch.manual_seed(0)
    model = PixelCNN(Config(**PP, pixels="logistic"), image_info((3, 7, 6))).eval()
    x = torch.rand(2, 3, 7, 6)
    with torch.no_grad():
        full = model.outputs(x)
        for i in range(7):
            part = model.outputs(x[:, :, : i + 1])
            torch.testing.assert_close(part[:, :, i], full[:, :, i], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("pixels", "levels", "shape", "arch"),
    [
        ("bernoulli", 2, (1, 2, 2), {}),
        ("categorical", 3, (1, 2, 2), {}),
        ("logistic", 3, (1, 2, 2), {}),
        ("logistic", 2, (3, 1, 2), {}),  # the channel coupling: G after R, B after both
        ("logistic", 3, (1, 2, 2), PP),
        ("bernoulli", 2, (1, 2, 2), PP),
    ],
)
def test_the_exact_likelihood_sums_to_one_over_every_image(pixels, levels, shape, arch):
    torch.manual_seed(0)
    info = image_info(shape, levels=levels)
    cfg = Config(**{"channels": 4, "layers": 2, "head": 4, "pixels": pixels, **arch})
    model = PixelCNN(cfg, info).eval()
    n = shape[0] * shape[1] * shape[2]
    grid = torch.tensor(list(itertools.product(range(levels), repeat=n)), dtype=torch.float32)
    x = (grid / (levels - 1)).view(-1, *shape)  # every possible image
    with torch.no_grad():
        total = torch.logsumexp(-model.nll({"x": x}), 0).exp()
    assert float(total) == pytest.approx(1.0, abs=1e-5)


def test_logistic_mixture_samples_follow_its_probabilities():
    """Drawn levels of one pixel (RGB, coupled) match the mixture's own probabilities of every
    level combination."""
    torch.manual_seed(0)
    levels, c = 3, 2
    params = torch.randn(1, logistic_mixture_size(c, 2)) * 0.8
    g = torch.Generator().manual_seed(0)
    draws = sample_logistic_mixture(params.expand(20000, -1), c, levels, generator=g)
    assert torch.equal(draws * (levels - 1), (draws * (levels - 1)).round())  # on the grid
    codes = (draws * (levels - 1)).round().long()
    counts = torch.bincount(codes[:, 0] * levels + codes[:, 1], minlength=levels**2) / 20000
    grid = torch.tensor(list(itertools.product(range(levels), repeat=c)), dtype=torch.float32)
    x = (grid / (levels - 1))[:, :, None, None]  # (9, C, 1, 1)
    probs = discretized_logistic_mixture_log_prob(
        params[:, :, None, None].expand(len(x), -1, 1, 1), x, levels
    ).exp()[:, 0, 0]
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(counts, probs, atol=0.015, rtol=0)


def test_training_beats_the_uniform_model_and_eval_reports_bits_per_dim(digits, tmp_path):
    fast = ["train.lr=1e-2", "train.batch_size=32", "train.eval_every=30"]
    run = genlab.train("pixelcnn", "digits", tmp_path / "p", overrides=[*TINY["pixelcnn"], *fast],
                       steps=30, quiet=True)  # fmt: skip
    m = evaluate(genlab.load(run), digits, "test", progress=False)
    uniform = 64 * np.log(2)  # nats of a fair coin per binarized pixel
    assert m["nll_nats"] < 0.85 * uniform
    assert m["bits_per_dim"] == pytest.approx(m["nll_nats"] / (64 * np.log(2)))


def test_sampling_completion_and_classes(digits):
    cfg = apply_overrides(default_config("pixelcnn"), tiny_overrides("pixelcnn"))
    torch.manual_seed(0)
    model = build_model("pixelcnn", cfg.model, digits.info).eval()
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    x = digits.batch("test", torch.arange(2))["x"]
    done = model.complete(x.clone(), 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(done[:, :, :5], (x[:, :, :5] > 0.5).float())  # the kept rows, binarized
    with pytest.raises(UsageError, match="between 1 and 7"):
        model.complete(x, 8)
    with pytest.raises(UsageError, match="unconditional"):
        model.sample(1, class_label=2)
    cond = build_model(
        "pixelcnn", apply_overrides(cfg, ["model.conditional=true"]).model, digits.info
    ).eval()
    assert cond.sample(2, class_label=4).shape == (2, 1, 8, 8)
    cat = apply_overrides(cfg, ["model.pixels=categorical"])
    values = build_model("pixelcnn", cat.model, digits.info).eval().sample(2) * 16
    assert torch.equal(values, values.round())  # on the data's 17-level grid


def test_command_line_completion(digits, tmp_path):
    run = genlab.train(
        "pixelcnn",
        "digits",
        tmp_path / "p",
        overrides=tiny_overrides("pixelcnn"),
        steps=3,
        quiet=True,
    )
    pixels = digits.splits["test"].x[0, 0].numpy() * 255 // 16
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "digit.png")
    out = tmp_path / "done.npy"
    r = run_cli("sample", str(run), "--complete", str(tmp_path / "digit.png"), "--rows", "4",
                "-n", "3", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    done = np.load(out)  # the image, then 3 completions
    assert done.shape == (4, 1, 8, 8)
    assert (done[1:, :, :4] == (done[:1, :, :4] > 0.5)).all()
    Image.fromarray(np.zeros((9, 8), dtype=np.uint8)).save(tmp_path / "tall.png")
    r = run_cli("sample", str(run), "--complete", str(tmp_path / "tall.png"))
    assert r.returncode == 1 and "8x9 pixels" in r.stderr and "8x8" in r.stderr


@pytest.mark.parametrize(
    ("shape", "pixels", "classes", "arch"),
    [
        ((1, 6, 7), "bernoulli", 0, {}),
        ((3, 4, 5), "categorical", 3, {}),
        ((1, 16, 5), "bernoulli", 0, {}),
        ((3, 4, 5), "logistic", 0, {}),
        ((1, 5, 6), "bernoulli", 3, PP),
        ((3, 4, 5), "logistic", 0, PP),
    ],
)
def test_sampling_draws_from_the_full_pass_outputs(shape, pixels, classes, arch, monkeypatch):
    """Every pixel's distribution during sampling (the gated network's cached, column-by-column
    sampler; the pp network's pass per pixel) equals the full network's outputs at that pixel
    for the finished image."""
    torch.manual_seed(0)
    cfg = Config(**{"channels": 8, "layers": 4, "head": 8, "pixels": pixels, **arch})
    cfg.conditional = bool(classes)
    model = PixelCNN(cfg, image_info(shape, levels=4, classes=classes)).eval()
    seen = []
    draw = model._draw
    monkeypatch.setattr(
        model, "_draw", lambda logits, t, g: seen.append(logits) or draw(logits, t, g)
    )
    g = torch.Generator().manual_seed(1)
    images = model.sample(3, generator=g, class_label=1 if classes else None)
    y = torch.full((3,), 1) if classes else None
    full = model.outputs(model.observe(images), y)  # (B, P, H, W)
    _, h, w = shape
    assert len(seen) == h * w
    for q, logits in enumerate(seen):
        torch.testing.assert_close(logits, full[..., q // w, q % w], atol=1e-5, rtol=1e-4)
