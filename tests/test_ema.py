"""The EMA of the weights: its warm-up decay sequence, and the warning when sampling from EMA
weights that have averaged too few steps to have caught up with training."""

from __future__ import annotations

import pytest
import torch

import genlab
from conftest import tiny_overrides
from genlab.cli import main
from genlab.training.ema import ema_decay_at, ema_lag_warning, ema_model


def test_the_decay_warms_up_as_in_diffusion_codebases():
    assert [ema_decay_at(0.999, n) for n in (1, 2, 3)] == [2 / 11, 3 / 12, 4 / 13]
    assert ema_decay_at(0.999, 90) == 91 / 100
    assert ema_decay_at(0.9, 80) == 0.9  # capped: (1 + 80) / 90 = 0.9 already
    assert ema_decay_at(0.9, 1000) == 0.9


def test_the_ema_follows_the_warm_up_sequence():
    w = torch.nn.Linear(1, 1, bias=False)
    ema = ema_model(w, 0.99)
    expected = None
    for step, value in enumerate([4.0, 2.0, 8.0, 0.0, 1.0]):
        with torch.no_grad():
            w.weight.fill_(value)
        ema.update_parameters(w)
        if expected is None:  # the first step's weights are copied
            expected = value
        else:  # the update after `step` averaged steps
            d = min(0.99, (1 + step) / (10 + step))
            expected = d * expected + (1 - d) * value
        assert ema.module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert int(ema.n_averaged) == 5


def test_the_lag_warning_names_the_steps_and_the_ways_out():
    assert ema_lag_warning(0.0, 3) is None  # no EMA
    assert ema_lag_warning(0.99, 100) is None  # averaged its horizon
    note = ema_lag_warning(0.999, 150)
    assert "averaged only 150 steps" in note and "about 1000" in note and "--no-ema" in note


def test_sampling_a_short_ema_run_warns_and_no_ema_does_not(tmp_path, capsys):
    run = tmp_path / "vae"
    overrides = tiny_overrides("vae", "train.ema_decay=0.99")
    genlab.train("vae", "digits", run, overrides=overrides, steps=6, quiet=True)
    assert genlab.load(run).notes == [ema_lag_warning(0.99, 6)]
    assert genlab.load(run, ema=False).notes == []
    out = tmp_path / "x.png"
    assert main(["sample", str(run), "-n", "4", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"genlab: warning: {ema_lag_warning(0.99, 6)}"
    assert main(["sample", str(run), "-n", "4", "--out", str(out), "--no-ema"]) == 0
    assert "warning" not in capsys.readouterr().err
