"""`genlab augment`: a classifier trained without and with generated data, both reported."""

from __future__ import annotations

import json

import pytest

import genlab
from genlab.cli import main
from genlab.errors import UsageError
from genlab.synthetic import augment_with_generated

TRAIN = ["train.batch_size=16", "train.eval_every=3", "train.log_every=1"]
GAN = ["model.channels=[8,16]", "model.latent_dim=8", "model.monitor_samples=0"]


@pytest.fixture(scope="module")
def conditional_gan(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "run"
    over = [*GAN, *TRAIN, "model.conditional=true"]
    return genlab.train("gan", "digits", out, overrides=over, steps=3, quiet=True)


def test_augment_reports_both_arms_and_the_gain(conditional_gan, tmp_path, capsys):
    report = tmp_path / "report.json"
    args = ["augment", "--generator", str(conditional_gan), "--data", "digits"]
    args += ["--labels-per-class", "3", "--synthetic-per-class", "2", "--steps", "3", "--quiet"]
    args += ["--set", "model.channels=[4,8]", "--set", "model.hidden=[16]"]
    args += ["--set", "train.batch_size=8", "--out", str(tmp_path / "arms"), "--json", str(report)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "real_accuracy:" in out and "augmented_accuracy:" in out and "gain:" in out
    r = json.loads(report.read_text())
    assert r["train_examples_real"] == 30 and r["train_examples_augmented"] == 30 + 20
    assert r["gain"] == pytest.approx(r["augmented_accuracy"] - r["real_accuracy"])
    assert (tmp_path / "arms" / "real" / "run.json").exists()
    assert (tmp_path / "arms" / "augmented" / "run.json").exists()


def test_augment_refuses_an_unconditional_generator(tmp_path):
    over = ["model.channels=[8,16]", "model.hidden=32", "model.latent_dim=4", *TRAIN]
    vae = genlab.train("vae", "digits", tmp_path / "vae", overrides=over, steps=1, quiet=True)
    with pytest.raises(UsageError, match="class-conditional.*ddpm, gan or pixelcnn"):
        augment_with_generated(vae, "digits", steps=1)
