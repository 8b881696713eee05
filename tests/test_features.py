"""The cached, checksummed `cnn` feature extractor used by sample-quality metrics."""

from __future__ import annotations

import pytest
import torch

import genlab.run
from genlab.data import load_dataset
from genlab.errors import DataError
from genlab.metrics.features import feature_extractor


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_trained_deterministically_cached_and_checksummed(tmp_path, monkeypatch, capsys):
    first = feature_extractor("digits", steps=40, cache_dir=tmp_path / "a")
    other = feature_extractor("digits", steps=40, cache_dir=tmp_path / "b")
    w = weights(first)
    assert all(torch.equal(w[k], v) for k, v in weights(other).items())  # same recipe, same weights
    assert not any(p.requires_grad for p in first.parameters()) and not first.training

    x = load_dataset("digits").batch("test", torch.arange(10))["x"]
    feats = first.features(x)
    assert feats.shape == (10, first.cfg.hidden[-1]) and torch.isfinite(feats).all()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached extractor should have been reused")

    monkeypatch.setattr(genlab.run, "train", no_training)
    again = feature_extractor("digits", steps=40, cache_dir=tmp_path / "a")
    assert all(torch.equal(w[k], v) for k, v in weights(again).items())

    # a damaged cache entry is noticed and trained again, to the same weights
    monkeypatch.undo()
    (cached,) = (tmp_path / "a").glob("*/model.safetensors")
    data = bytearray(cached.read_bytes())
    data[-5] ^= 0xFF
    cached.write_bytes(bytes(data))
    healed = feature_extractor("digits", steps=40, cache_dir=tmp_path / "a")
    assert "fails its checksum" in capsys.readouterr().err
    assert all(torch.equal(w[k], v) for k, v in weights(healed).items())


def test_needs_labelled_images(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,target\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    with pytest.raises(DataError, match="image data"):
        feature_extractor(str(csv), steps=5, cache_dir=tmp_path)
