"""The VAE's and PixelCNN's default pixel model ("auto"): Bernoulli only for nearly binary
images, a discretized likelihood for grey or colour ones; the run records and shows the choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.config import apply_overrides
from genlab.data import load_dataset
from genlab.data.image import grey_fraction
from genlab.distributions import NEARLY_BINARY
from genlab.run import build_model
from genlab.runconfig import default_config

TINY = {
    "vae": ["model.channels=[8,16]", "model.hidden=32", "model.latent_dim=4"],
    "pixelcnn": ["model.channels=8", "model.layers=3", "model.head=16"],
}
"""The families' tiny settings without their pinned pixel model."""
SETTING = {"vae": ("likelihood", "gaussian"), "pixelcnn": ("pixels", "categorical")}


@pytest.fixture(scope="module")
def binary_images(tmp_path_factory) -> Path:
    """60 black-and-white 8x8 PNGs (the digits thresholded at half), unlabelled."""
    folder = tmp_path_factory.mktemp("binary")
    x = load_dataset("digits").splits["train"].x[:60].numpy()
    for i, img in enumerate(x):
        pixels = np.where(img[0] > 8, 255, 0).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"b{i:02d}.png")
    return folder


def test_grey_fraction_known_answers():
    assert grey_fraction(torch.tensor([0, 255, 255, 0], dtype=torch.uint8), 256) == 0.0
    assert grey_fraction(torch.tensor([13, 242, 12, 243], dtype=torch.uint8), 256) == 0.5
    assert grey_fraction(torch.full((10,), 128, dtype=torch.uint8), 256) == 1.0
    digits = load_dataset("digits").info.record.grey_fraction
    assert 0.3 < digits < 0.5 and digits > NEARLY_BINARY  # 17 grey levels, many in between


@pytest.mark.parametrize("family", ["vae", "pixelcnn"])
def test_auto_picks_bernoulli_only_for_nearly_binary_data(family, binary_images):
    setting, discrete = SETTING[family]
    for spec, expected in (("digits", discrete), (str(binary_images), "bernoulli")):
        data = load_dataset(spec)
        cfg = apply_overrides(default_config(family), TINY[family])
        assert getattr(cfg.model, setting) == "auto"
        model = build_model(family, cfg.model, data.info)
        assert getattr(cfg.model, setting) == expected  # resolved in the run's config
        assert model.choices[0].startswith(f"model.{setting}={expected} (auto: ")
        x = data.batch("train", torch.arange(8))
        assert torch.isfinite(model.loss(x)["loss"])
    cfg = apply_overrides(default_config(family), [*TINY[family], f"model.{setting}=bernoulli"])
    assert build_model(family, cfg.model, load_dataset("digits").info).choices == []  # as set


def test_the_run_records_and_the_summary_shows_the_choice(tmp_path, capsys):
    run = tmp_path / "vae"
    sets = [w for s in TINY["vae"] for w in ("--set", s)]
    args = ["train", "vae", "--data", "digits", "--out", str(run), "--steps", "2", "--quiet"]
    assert main([*args, *sets]) == 0
    out = capsys.readouterr().out
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["model"]["likelihood"] == "gaussian"
    assert meta["data"]["record"]["grey_fraction"] > NEARLY_BINARY
    [line] = meta["choices"]
    assert line.startswith("model.likelihood=gaussian (auto: 4") and line in out.splitlines()
    assert main(["train", "vae", "--out", str(run), "--resume", "--steps", "3", "--quiet"]) == 0
    assert json.loads((run / "run.json").read_text())["choices"] == [line]  # kept on resume
