"""The VAE's objectives (the ELBO and the importance-weighted bound, IWAE) and its PixelCNN
decoder (causal, normalized given z, sampled pixel by pixel, refused by export)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import genlab
from genlab.data import DataInfo
from genlab.data.image import ImageRecord
from genlab.errors import UsageError
from genlab.models.vae import VAE, Config


def make_vae(shape=(1, 8, 8), levels=17, **kw) -> VAE:
    torch.manual_seed(0)
    cfg = Config(channels=[4, 8], hidden=16, latent_dim=3, **kw)
    cfg.validate()
    info = DataInfo(source="t", kind="image", shape=list(shape), record=ImageRecord(levels=levels))
    return VAE(cfg, info)


def test_iwae_bound_is_log_mean_exp_of_the_log_weights_and_tops_their_mean():
    vae = make_vae(objective="iwae", train_samples=7)
    x = (torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    log_w = vae.log_weights(x, 7, torch.Generator().manual_seed(2))
    assert log_w.shape == (7, 5)
    bound = torch.logsumexp(log_w, 0) - math.log(7)
    by_hand = torch.log(torch.exp(log_w.double()).mean(0)).float()
    torch.testing.assert_close(bound, by_hand, rtol=1e-5, atol=1e-4)
    # Jensen on the same draws: the K-sample bound is never below the mean one-sample ELBO
    assert (bound >= log_w.mean(0) - 1e-5).all()


def test_iwae_loss_is_the_negative_bound_on_the_same_draws():
    vae = make_vae(objective="iwae", train_samples=4, binarize="threshold")
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    loss = vae.loss({"x": x})["loss"]
    torch.manual_seed(3)
    log_w = vae.log_weights((x > 0.5).float(), 4)
    expected = -(torch.logsumexp(log_w, 0) - math.log(4)).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_iwae_with_a_beta_other_than_one_is_refused():
    with pytest.raises(UsageError, match="model.beta .* model.objective=iwae"):
        Config(objective="iwae", beta=0.5).validate()
    with pytest.raises(UsageError, match="model.train_samples must be at least 1"):
        Config(objective="iwae", train_samples=0).validate()


def test_an_iwae_run_trains_and_evaluates_from_the_cli_settings(tmp_path):
    out = genlab.train(
        "vae", "digits", tmp_path / "iwae", steps=30, quiet=True,
        overrides=[*VAE.tiny, "model.objective=iwae", "model.train_samples=3",
                   "train.batch_size=32", "train.eval_every=15"],
    )  # fmt: skip
    model = genlab.load(out)
    assert model.cfg.objective == "iwae" and model.cfg.train_samples == 3
    nll = model.nll({"x": torch.rand(4, *model.info.shape)}, iw_samples=10)
    assert torch.isfinite(nll).all() and (nll > 0).all()


PIXEL = {"decoder": "pixelcnn", "pixel_layers": 3, "pixel_channels": 8, "pixel_features": 4}
PP = {"decoder": "pixelcnn", "pixel_arch": "pp", "pixel_resnets": 1, "pixel_channels": 8,
      "pixel_features": 4}  # fmt: skip
both_decoders = pytest.mark.parametrize("pixel", [PIXEL, PP], ids=["gated", "pp"])


@both_decoders
def test_the_pixelcnn_decoder_is_causal_given_z(pixel):
    """Given z, the logit at raster position q changes with the pixels before q only."""
    vae = make_vae(likelihood="bernoulli", **pixel)
    z = torch.randn(1, 3)
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    out = vae.decoder_output(z, x)
    for q in [0, 9, 27, 63]:
        (grad,) = torch.autograd.grad(out[..., q // 8, q % 8].sum(), x, retain_graph=True)
        seen = grad.abs().flatten() > 0
        assert not seen[q:].any(), q  # nothing at or after q
        assert q == 0 or seen[q - 1]  # the pixel just before is read


@both_decoders
def test_p_x_given_z_sums_to_one_over_every_binary_image(pixel):
    vae = make_vae(shape=(1, 2, 2), levels=2, likelihood="bernoulli", **pixel).eval()
    grid = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4))).view(16, 1, 2, 2)
    with torch.no_grad():
        for z in torch.randn(3, 1, 3):
            out = vae.decoder_output(z.expand(16, 3), grid)
            total = torch.logsumexp(vae.log_likelihood(out, grid), 0).exp()
            assert float(total) == pytest.approx(1.0, abs=1e-5)


@both_decoders
def test_pixel_by_pixel_sampling_draws_each_pixel_from_its_full_pass_probability(
    monkeypatch, pixel
):
    """The draw of pixel (i, j), made on rows <= i only, uses the probability the full pass
    gives it on the finished image (the pp decoder's pooled maps line up on partial rows)."""
    vae = make_vae(shape=(1, 5, 4), likelihood="bernoulli", **pixel).eval()
    u = torch.rand(3, 1, 5, 4, generator=torch.Generator().manual_seed(0))
    draws = iter(u.permute(2, 3, 0, 1).reshape(20, 3, 1))  # raster order, per pixel (B, C)
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: next(draws))
    with torch.no_grad():
        z = torch.randn(3, 3)
        x = vae.decode(z)
        p = torch.sigmoid(vae.decoder_output(z, x))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(x, (u < p).float())


def test_reconstruction_through_the_pixelcnn_decoder_is_one_deterministic_pass():
    """reconstruct gives each pixel's probability given the posterior mean and the pixels
    before it (thresholded), the same on every call."""
    vae = make_vae(likelihood="bernoulli", **PIXEL).eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first, second = vae.reconstruct(x), vae.reconstruct(x)
        by_hand = torch.sigmoid(vae.decoder_output(vae.encode(x), (x > 0.5).float()))
    assert torch.equal(first, second)
    torch.testing.assert_close(first, by_hand)
    assert not set(first.unique().tolist()) <= {0.0, 1.0}  # probabilities, not draws


def test_a_pixelcnn_decoder_run_trains_evaluates_samples_and_is_not_exported(tmp_path):
    from conftest import run_cli

    out = genlab.train(
        "vae", "digits", tmp_path / "pv", steps=20, quiet=True,
        overrides=[*VAE.tiny, *(f"model.{k}={v}" for k, v in PIXEL.items()),
                   "train.batch_size=32", "train.eval_every=10"],
    )  # fmt: skip
    model = genlab.load(out)
    nll = model.nll({"x": torch.rand(4, *model.info.shape)}, iw_samples=5)
    assert torch.isfinite(nll).all() and (nll > 0).all()
    images = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, *model.info.shape)
    assert set(images.unique().tolist()) <= {0.0, 1.0}
    r = run_cli("export", str(out), "--format", "torchscript")
    assert r.returncode == 2 and "pixel by pixel" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(UsageError, match="model.likelihood=bernoulli"):
        make_vae(likelihood="gaussian", **PIXEL)
    with pytest.raises(UsageError, match="model.pixel_layers"):
        Config(decoder="pixelcnn", pixel_layers=0).validate()
    with pytest.raises(UsageError, match="model.pixel_resnets"):
        Config(decoder="pixelcnn", pixel_arch="pp", pixel_resnets=0).validate()


def test_free_bits_floor_each_dimensions_kl_in_training_only():
    vae = make_vae(free_bits=0.5, binarize="threshold")
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    out = vae.train().loss({"x": x})
    torch.manual_seed(3)
    recon, kl = vae._elbo_parts(vae.observe(x), per_dim=True)
    floored = kl.mean(0).clamp(min=0.5).sum()
    assert float(floored) > float(kl.sum(1).mean())  # the floor binds on this batch
    torch.testing.assert_close(out["loss"], -recon.mean() + floored)
    torch.testing.assert_close(out["kl"], kl.sum(1).mean())  # reported: the true KL
    torch.manual_seed(3)
    assert float(vae.eval().loss({"x": x})["loss"]) == pytest.approx(
        float(-(recon - kl.sum(1)).mean()), rel=1e-5
    )
    with pytest.raises(UsageError, match="model.free_bits .* model.objective=iwae"):
        Config(objective="iwae", free_bits=0.5).validate()
    with pytest.raises(UsageError, match="model.free_bits must be 0 or more"):
        Config(free_bits=-1).validate()
