"""SimCLR: the NT-Xent loss by hand, the batched views, and a family that does not sample."""

from __future__ import annotations

import math

import pytest
import torch

from genlab import augment
from genlab.augment import ViewConfig, views
from genlab.data import load_dataset
from genlab.errors import UsageError
from genlab.models.simclr import nt_xent
from genlab.run import build_model
from genlab.runconfig import default_config


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_nt_xent_matches_a_hand_computation_on_four_examples():
    z1 = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 3.0]]
    z2 = [[2.0, 0.5, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.5, 0.0, 1.0]]
    t = 0.5
    views_ = z1 + z2  # view i's partner is view (i + 4) mod 8
    total = 0.0
    for i, zi in enumerate(views_):
        partner = (i + 4) % 8
        others = [math.exp(cosine(zi, zk) / t) for k, zk in enumerate(views_) if k != i]
        total += -math.log(math.exp(cosine(zi, views_[partner]) / t) / sum(others))
    expected = total / 8
    got = nt_xent(torch.tensor(z1), torch.tensor(z2), t).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_nt_xent_is_lowest_when_each_view_matches_its_partner_only():
    z = torch.eye(4)
    assert nt_xent(z, z, 0.1) < nt_xent(z, z.roll(1, 0), 0.1)


@pytest.mark.parametrize("channels", [1, 3])
def test_views_keep_shape_dtype_and_range_and_repeat_with_a_seed(channels):
    x = torch.rand(6, channels, 12, 10)
    cfg = ViewConfig()
    a = views(x, cfg, generator=torch.Generator().manual_seed(4))
    b = views(x, cfg, generator=torch.Generator().manual_seed(4))
    c = views(x, cfg, generator=torch.Generator().manual_seed(5))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1].roll(0))  # a draw per image, not one per batch


def test_each_view_step_keeps_shape_and_the_identity_settings_change_nothing():
    x = torch.rand(5, 3, 9, 9)
    g = torch.Generator().manual_seed(0)
    same = augment.crop_and_affine(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=g)
    assert torch.allclose(same, x, atol=1e-5)  # a full crop, no rotation: the image itself
    assert torch.equal(augment.gaussian_blur(x, prob=0.0, generator=g), x)
    assert torch.equal(augment.colour_jitter(x, strength=0.0, generator=g), x)
    assert torch.equal(augment.gaussian_noise(x, std=0.0, generator=g), x)
    grey = torch.rand(5, 1, 9, 9)
    assert torch.equal(augment.colour_jitter(grey, strength=0.5, generator=g), grey)  # RGB only
    blurred = augment.gaussian_blur(x, sigma=(1.0, 1.0), prob=1.0, generator=g)
    assert blurred.shape == x.shape and blurred.var() < x.var()


def test_simclr_represents_and_refuses_to_sample():
    data = load_dataset("digits")
    cfg = default_config("simclr")
    model = build_model("simclr", cfg.model, data.info)
    assert not model.generates()
    assert model.representation(torch.rand(3, 1, 8, 8)).shape == (3, 128)
    encoder = sum(p.numel() for p in model.convs.parameters())
    assert encoder == 240_256 + 2 * (32 + 64 + 128 + 128)  # lightly's 4 convolutions + BN
    with pytest.raises(UsageError, match="learns representations"):
        model.sample(2)


def test_knn_votes_by_similarity_and_caps_k():
    from genlab.metrics.probes import knn_accuracy

    train_x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    train_y = torch.tensor([0, 0, 1, 1])
    test_x = torch.tensor([[1.0, 0.2], [0.2, 1.0], [0.0, 3.0]])
    assert knn_accuracy(train_x, train_y, test_x, torch.tensor([0, 1, 1]), k=1) == 1.0
    assert knn_accuracy(train_x, train_y, test_x, torch.tensor([1, 0, 0]), k=200) == 0.0


def test_probe_report_scores_the_encoder_beside_a_random_one_and_pixels():
    from genlab.metrics.probes import probe_report

    data = load_dataset("digits")
    cfg = default_config("simclr")
    torch.manual_seed(0)
    model = build_model("simclr", cfg.model, data.info)
    out = probe_report(model, data, "test", probe_examples=300, knn_k=5)
    assert out["probe_train_examples"] == 300 and out["knn_k"] == 5
    for key in ("linear_probe_acc", "knn_acc", "random_linear_probe_acc", "pixels_knn_acc"):
        assert 0.5 < out[key] <= 1.0, (key, out[key])  # digits are easy even from pixels


def test_eval_shows_the_probes_and_sample_refuses_in_one_line(tmp_path, capsys):
    import genlab
    from genlab.cli import main

    over = ["model.channels=[8,16]", "model.proj_hidden=16", "model.proj_dim=8"]
    over += ["train.batch_size=32", "train.eval_every=2"]
    run = genlab.train("simclr", "digits", tmp_path / "run", overrides=over, steps=2, quiet=True)
    assert main(["eval", str(run), "--probe-examples", "200", "--knn-k", "10"]) == 0
    out = capsys.readouterr().out
    for key in ("linear_probe_acc", "knn_acc", "random_linear_probe_acc", "pixels_knn_acc"):
        assert f"{key}: " in out
    assert "knn_k: 10" in out and "probe_train_examples: 200" in out
    assert main(["sample", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "learns representations" in err[0]
