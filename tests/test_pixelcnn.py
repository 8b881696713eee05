"""The Gated PixelCNN: causal masks with no blind spot, an exact and normalized likelihood,
pixel-by-pixel sampling that matches the full pass, completion, and the command line."""

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
    """depends[q, p]: whether the logits at raster position q change with the input at p."""
    c, h, w = shape
    x = torch.rand(1, *shape, requires_grad=True)
    logits = model.logits(x)  # (1, C, K, H, W)
    rows = []
    for q in range(h * w):
        (grad,) = torch.autograd.grad(logits[..., q // w, q % w].sum(), x, retain_graph=True)
        rows.append(grad.abs().sum(1).flatten() > 0)  # any channel of each input pixel
    return torch.stack(rows)


@pytest.mark.parametrize(
    ("shape", "pixels"), [((1, 8, 8), "bernoulli"), ((3, 5, 5), "categorical")]
)
def test_each_pixel_depends_on_exactly_the_pixels_before_it(shape, pixels):
    """Changing pixel p changes no output at positions <= p (all channels), and with enough
    layers every output sees every earlier pixel: no blind spot."""
    torch.manual_seed(0)
    cfg = Config(channels=8, layers=5, head=8, pixels=pixels)
    depends = dependency(PixelCNN(cfg, image_info(shape, levels=4)), shape)
    n = shape[1] * shape[2]
    before = torch.ones(n, n, dtype=torch.bool).tril(-1)  # before[q, p] = p < q
    assert torch.equal(depends, before)


def test_row_by_row_sampling_computes_the_full_pass_logits():
    torch.manual_seed(0)
    model = PixelCNN(Config(channels=8, layers=4, head=8), image_info((1, 6, 7)))
    x = torch.rand(2, 1, 6, 7)
    full = model.logits(x)  # (2, 1, 1, 6, 7)
    conds = model._conds(None)
    for i, j in [(0, 0), (2, 3), (5, 6), (4, 0)]:
        to_h = [t[:, :, i : i + 1] for t in model.vertical_inputs(x[:, :, : i + 1], conds)]
        part = model.horizontal_logits(
            x[:, :, i : i + 1, : j + 1], [t[..., : j + 1] for t in to_h], conds
        )
        assert torch.allclose(part[..., 0, j], full[..., i, j], atol=1e-5)


@pytest.mark.parametrize(("pixels", "levels"), [("bernoulli", 2), ("categorical", 3)])
def test_the_exact_likelihood_sums_to_one_over_every_image(pixels, levels):
    torch.manual_seed(0)
    info = image_info((1, 2, 2), levels=levels)
    model = PixelCNN(Config(channels=4, layers=2, head=4, pixels=pixels), info).eval()
    grid = torch.tensor(list(itertools.product(range(levels), repeat=4)), dtype=torch.float32)
    x = (grid / (levels - 1)).view(-1, 1, 2, 2)  # every possible image
    with torch.no_grad():
        total = torch.logsumexp(-model.nll({"x": x}), 0).exp()
    assert float(total) == pytest.approx(1.0, abs=1e-5)


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
    ("shape", "pixels", "classes"),
    [((1, 6, 7), "bernoulli", 0), ((3, 4, 5), "categorical", 3), ((1, 16, 5), "bernoulli", 0)],
)
def test_cached_sampling_draws_from_the_full_pass_logits(shape, pixels, classes, monkeypatch):
    """Every pixel's distribution during (cached, column-by-column) sampling equals the full
    network's logits at that pixel for the finished image."""
    torch.manual_seed(0)
    cfg = Config(channels=8, layers=4, head=8, pixels=pixels, conditional=bool(classes))
    model = PixelCNN(cfg, image_info(shape, levels=4, classes=classes)).eval()
    seen = []
    draw = model._draw
    monkeypatch.setattr(
        model, "_draw", lambda logits, t, g: seen.append(logits) or draw(logits, t, g)
    )
    g = torch.Generator().manual_seed(1)
    images = model.sample(3, generator=g, class_label=1 if classes else None)
    y = torch.full((3,), 1) if classes else None
    full = model.logits(model.observe(images), y)  # (B, C, K, H, W)
    _, h, w = shape
    assert len(seen) == h * w
    for q, logits in enumerate(seen):
        torch.testing.assert_close(logits, full[..., q // w, q % w], atol=1e-5, rtol=1e-4)
