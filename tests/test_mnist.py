"""Integration on the real MNIST files in ../shared/data/mnist (skipped where they are absent)."""

from __future__ import annotations

import math

import genlab
from genlab.metrics.evaluate import evaluate
from genlab.run import load_data, read_run


def test_lenet_learns_mnist(mnist_dir, tmp_path):
    run = genlab.train(
        "cnn",
        str(mnist_dir),
        tmp_path / "cnn",
        steps=300,
        quiet=True,
        overrides=["train.lr=3e-3", "train.eval_every=300", "train.eval_batches=20"],
    )
    _, cfg, info = read_run(run)
    assert (info.n_train, info.n_val, info.n_test) == (54000, 6000, 10000)
    m = evaluate(genlab.load(run), load_data(cfg, str(mnist_dir)), progress=False)
    assert m["examples"] == 10000
    assert m["accuracy"] > 0.93  # LeNet-5 after 300 steps of 64; about 99% when fully trained


def test_vae_likelihood_on_binarized_mnist(mnist_dir, tmp_path):
    run = genlab.train(
        "vae",
        str(mnist_dir),
        tmp_path / "vae",
        steps=200,
        quiet=True,
        overrides=["train.lr=2e-3", "train.eval_every=200", "train.eval_batches=5"],
    )
    _, cfg, _ = read_run(run)
    m = evaluate(
        genlab.load(run), load_data(cfg, str(mnist_dir)), options={"iw_samples": 2}, progress=False
    )
    # a uniform Bernoulli model costs 784 ln 2 = 543 nats; 200 steps get well under 200
    assert 80 < m["nll_nats"] < 200
    # the importance-weighted bound is tighter than the ELBO, on the same binarization
    assert m["nll_nats"] <= m["neg_elbo_nats"]
    assert math.isclose(m["bits_per_dim"], m["nll_nats"] / (784 * math.log(2)))
