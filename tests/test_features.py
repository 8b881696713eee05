"""The frozen `cnn` judge of sample-quality metrics: trained and cached by genlab.judges (the
run layer), only loaded, checksum-verified, by genlab.metrics.features."""

from __future__ import annotations

import pytest
import torch

import genlab.judges
import genlab.training.loop
from genlab.data import load_dataset
from genlab.errors import DataError, UsageError
from genlab.judges import judge
from genlab.metrics.features import JudgeNotCached, load_judge


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_trained_deterministically_cached_and_checksummed(tmp_path, monkeypatch, capsys):
    first = judge("digits", steps=40, cache_dir=tmp_path / "a")
    other = judge("digits", steps=40, cache_dir=tmp_path / "b")
    w = weights(first)
    assert all(torch.equal(w[k], v) for k, v in weights(other).items())  # same recipe, same weights
    assert not any(p.requires_grad for p in first.parameters()) and not first.training

    x = load_dataset("digits").batch("test", torch.arange(10))["x"]
    feats = first.features(x)
    assert feats.shape == (10, first.cfg.hidden[-1]) and torch.isfinite(feats).all()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached judge should have been reused")

    monkeypatch.setattr(genlab.judges, "Trainer", no_training)
    again = judge("digits", steps=40, cache_dir=tmp_path / "a")
    loaded = load_judge("digits", steps=40, cache_dir=tmp_path / "a")  # the metrics' loader
    for model in (again, loaded):
        assert all(torch.equal(w[k], v) for k, v in weights(model).items())
    assert loaded.test_accuracy == first.test_accuracy

    # a damaged cache entry is refused by the loader and trained again by the run layer
    monkeypatch.undo()
    (cached,) = (tmp_path / "a").glob("*/model.safetensors")
    data = bytearray(cached.read_bytes())
    data[-5] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(JudgeNotCached, match="fails its checksum") as err:
        load_judge("digits", steps=40, cache_dir=tmp_path / "a")
    assert err.value.damaged
    healed = judge("digits", steps=40, cache_dir=tmp_path / "a")
    assert "fails its checksum" in capsys.readouterr().err
    assert all(torch.equal(w[k], v) for k, v in weights(healed).items())

    # so is one whose meta.json is torn
    (meta,) = (tmp_path / "a").glob("*/meta.json")
    meta.write_text(meta.read_text()[:20])
    with pytest.raises(JudgeNotCached, match="unreadable meta.json") as err:
        load_judge("digits", steps=40, cache_dir=tmp_path / "a")
    assert err.value.damaged
    healed = judge("digits", steps=40, cache_dir=tmp_path / "a")
    assert all(torch.equal(w[k], v) for k, v in weights(healed).items())


def test_loading_a_judge_never_trains_one_and_says_how(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("metrics must not train")

    monkeypatch.setattr(genlab.training.loop.Trainer, "fit", no_training)
    with pytest.raises(UsageError, match="no frozen judge") as err:
        load_judge("digits", steps=7, cache_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and "genlab eval RUN_DIR --samples N --feature-steps 7" in message
    assert "genlab.judges.judge('digits', steps=7)" in message
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_needs_labelled_images(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,target\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    with pytest.raises(DataError, match="image data"):
        judge(str(csv), steps=5, cache_dir=tmp_path)
