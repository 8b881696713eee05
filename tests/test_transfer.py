"""Transfer learning: a cnn fine-tuned from a simclr encoder, frozen layers, few-shot data."""

from __future__ import annotations

import pytest
import torch

import genlab
from genlab.config import apply_overrides
from genlab.data import DataConfig, load_dataset
from genlab.errors import UsageError
from genlab.io.checkpoint import find_checkpoint, load_tensors
from genlab.training.config import TrainConfig
from genlab.training.optim import build_optimizer

TRAIN = ["train.batch_size=16", "train.eval_every=3", "train.log_every=1"]
MATCHING_CNN = ["model.channels=[8,16]", "model.kernel_size=3", "model.batch_norm=true"]


@pytest.fixture(scope="module")
def simclr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("simclr") / "run"
    over = ["model.channels=[8,16]", "model.proj_hidden=16", "model.proj_dim=8", *TRAIN]
    return genlab.train("simclr", "digits", out, overrides=over, steps=3, quiet=True)


def weights(run) -> dict[str, torch.Tensor]:
    return load_tensors(find_checkpoint(run, "latest") / "model.safetensors")


def test_a_frozen_layer_does_not_change_when_fine_tuning(simclr_run, tmp_path, capsys):
    over = [*MATCHING_CNN, *TRAIN, "train.freeze_layers=1", "model.hidden=[16]"]
    run = genlab.train(
        "cnn", "digits", tmp_path / "cnn", overrides=over, steps=4, init_from=simclr_run
    )
    assert "copied 8 tensors" in capsys.readouterr().out  # 2 blocks: conv and bn w, b
    src, tuned = weights(simclr_run), weights(run)
    for name in ("convs.0.weight", "convs.0.bias", "convs.1.weight", "convs.1.running_mean"):
        assert torch.equal(tuned[name], src[name]), name  # frozen block: weights and statistics
    assert not torch.equal(tuned["convs.4.weight"], src["convs.4.weight"])  # trained block


def test_init_from_a_run_whose_encoder_does_not_fit_is_a_clear_error(simclr_run, tmp_path):
    with pytest.raises(UsageError, match="no encoder layer"):
        genlab.train("cnn", "digits", tmp_path / "x", steps=1, quiet=True, init_from=simclr_run)


def test_pretrained_parameters_learn_at_the_scaled_rate():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model.pretrained = {"0.weight", "0.bias"}
    cfg = TrainConfig(lr=1e-3, pretrained_lr_scale=0.1)
    rates = {id(p): g["lr"] for g in build_optimizer(model, cfg).param_groups for p in g["params"]}
    assert rates[id(model[0].weight)] == pytest.approx(1e-4)
    assert rates[id(model[0].bias)] == pytest.approx(1e-4)
    assert rates[id(model[1].weight)] == pytest.approx(1e-3)


def test_labels_per_class_keeps_n_of_each_class_seeded():
    def cut(*settings: str):
        return load_dataset("digits", apply_overrides(DataConfig(), list(settings)))

    a = cut("labels_per_class=3")
    assert torch.bincount(a.splits["train"].y).tolist() == [3] * 10
    assert torch.bincount(a.splits["val"].y).max() <= 3
    assert len(a.splits["test"]) == len(load_dataset("digits").splits["test"])  # untouched
    assert torch.equal(a.splits["train"].x, cut("labels_per_class=3").splits["train"].x)
    assert not torch.equal(
        a.splits["train"].x, cut("labels_per_class=3", "seed=1").splits["train"].x
    )
    assert a.info.n_train == 30 and a.info.fingerprint != load_dataset("digits").info.fingerprint
    b = cut("classes=[1,7]")
    for split in b.splits.values():
        assert set(split.y.tolist()) == {1, 7}
    with pytest.raises(UsageError, match="data.classes"):
        cut("classes=[12]")
