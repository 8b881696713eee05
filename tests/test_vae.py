"""The VAE's objectives: the ELBO and the importance-weighted bound (IWAE)."""

from __future__ import annotations

import math

import pytest
import torch

import genlab
from genlab.data import DataInfo
from genlab.data.image import ImageRecord
from genlab.errors import UsageError
from genlab.models.vae import VAE, Config


def make_vae(**kw) -> VAE:
    torch.manual_seed(0)
    cfg = Config(channels=[4, 8], hidden=16, latent_dim=3, **kw)
    cfg.validate()
    info = DataInfo(source="t", kind="image", shape=[1, 8, 8], record=ImageRecord(levels=17))
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
