"""What `genlab eval` leaves behind and shows: result files named by the data they scored,
--max-examples, --split all with a CSV of anomaly scores, and sample-quality warnings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from conftest import tiny_overrides
from genlab.cli import main
from genlab.data import load_dataset
from genlab.metrics.quality import density_coverage, precision_recall, quality_warnings, spread


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "vae"
    genlab.train("vae", "digits", run, overrides=tiny_overrides("vae"), steps=6, quiet=True)
    return run


@pytest.fixture(scope="module")
def other_images(tmp_path_factory) -> Path:
    """40 PNG digits (8x8, grey) in two class folders: other data of the run's shape."""
    folder = tmp_path_factory.mktemp("other") / "my digits"
    x = load_dataset("digits").splits["train"].x[:40].numpy()  # (40, 1, 8, 8), 17 levels
    for i, img in enumerate(x):
        (folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        pixels = (img[0].astype(np.float64) * 255 / 16).round().astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"c{i % 2}" / f"img{i:02d}.png")
    return folder


def run_eval(capsys, *args: str) -> tuple[str, str]:
    rc = main(["eval", *args])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out, err


def test_evaluating_other_data_keeps_the_runs_own_result(vae_run, other_images, capsys):
    run_eval(capsys, str(vae_run), "--split", "val")
    own = vae_run / "eval-val.json"
    before = own.read_text()
    out, _ = run_eval(capsys, str(vae_run), "--data", str(other_images), "--split", "val")
    assert own.read_text() == before
    fingerprint = json.loads((vae_run / "run.json").read_text())["data"]["fingerprint"]
    other = [p for p in vae_run.glob("eval-*-val.json") if p != own]
    assert len(other) == 1
    m = json.loads(other[0].read_text())
    assert other[0].name == f"eval-my_digits-{m['data_fingerprint'][:8]}-val.json"
    assert m["data_fingerprint"] != fingerprint and m["data"] == str(other_images)
    assert f"wrote {other[0]}" in out
    found = genlab.evaluations(vae_run)
    assert set(found) >= {"eval-val.json", other[0].name}
    assert found["eval-val.json"]["split"] == "val" and found["eval-val.json"]["data"] == "digits"
    assert found[other[0].name]["examples"] == m["examples"]


def test_anomaly_scores_of_every_example_as_a_sorted_csv(vae_run, other_images, capsys):
    out, _ = run_eval(
        capsys, str(vae_run), "--data", str(other_images), "--split", "all", "--anomaly-scores"
    )
    [table] = vae_run.glob("eval-my_digits-*-all-anomaly-scores.csv")
    assert f"wrote {table}" in out
    with open(table, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["example", "score"]
    names = [r[0] for r in rows[1:]]
    scores = [float(r[1]) for r in rows[1:]]
    expected = sorted(str(p.relative_to(other_images)) for p in other_images.rglob("*.png"))
    assert sorted(names) == expected  # all 40 images, each once, by file name
    assert scores == sorted(scores, reverse=True)  # most unusual first
    m = json.loads(table.with_name(table.name.replace("-anomaly-scores.csv", ".json")).read_text())
    assert m["examples"] == 40 and sorted(m["anomaly_scores"], reverse=True) == scores


def test_max_examples_bounds_what_is_scored(vae_run, capsys, tmp_path):
    table = tmp_path / "scores.csv"
    args = ["--split", "all", "--max-examples", "7", "--anomaly-scores", "--csv", str(table)]
    run_eval(capsys, str(vae_run), "--json", str(tmp_path / "m.json"), *args)
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["examples"] == 7 and len(m["anomaly_scores"]) == 7
    rows = table.read_text().splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == [f"train:{i}" for i in range(7)]  # digits
    run_eval(capsys, str(vae_run), "--json", str(tmp_path / "v.json"), "--max-examples", "1000")
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["examples"] == json.loads((vae_run / "run.json").read_text())["data"]["n_test"]


def test_max_examples_must_be_positive(vae_run, capsys):
    assert main(["eval", str(vae_run), "--max-examples", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "genlab eval: error: --max-examples must be at least 1; got 0"


# sample quality: precision that collapsed samples fool, coverage that they do not ------------


def test_collapsed_samples_inside_one_wide_ball_fool_precision_not_coverage():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 4, generator=g)
    real[:3] += 6.0  # a few outliers: their 3-NN balls are wide
    fake = real[1] + 0.5 + 0.01 * torch.randn(100, 4, generator=g)  # collapsed by an outlier
    pr, dc = precision_recall(real, fake), density_coverage(real, fake)
    assert pr == {"precision": 1.0, "recall": 0.0}  # every sample inside a real ball
    assert dc["coverage"] <= 5 / 200  # yet they cover a handful of the 200 balls
    assert spread(real, fake) < 0.02 and spread(real, real) == pytest.approx(1.0)
    warnings = quality_warnings({**pr, **dc, "coverage_real": 1.0, "spread": 0.01})
    assert warnings[0].startswith("precision high (1.000), recall ~0 (0.000): samples collapsed")
    assert "coverage (0.0" in warnings[0]
    assert quality_warnings({"precision": 0.9, "recall": 0.8}) == []  # real-like figures: none


def test_pure_noise_samples_get_low_coverage_and_the_output_warns(
    vae_run, capsys, tmp_path, monkeypatch
):
    from genlab.models.vae import VAE

    def noise(self, n, *, generator=None, **options):  # the grey noise of an untrained GAN
        return (0.5 + 0.1 * torch.randn(n, 1, 8, 8, generator=generator)).clamp(0, 1)

    monkeypatch.setattr(VAE, "sample", noise)
    out = tmp_path / "q.json"
    stdout, err = run_eval(
        capsys, str(vae_run), "--samples", "100", "--feature-steps", "30", "--json", str(out)
    )
    q = json.loads(out.read_text())
    assert q["coverage"] < 0.3 < 0.9 < q["coverage_real"]  # noise covers little of the data
    assert q["spread"] < 0.7 * q["spread_real"]
    assert q["warnings"] == quality_warnings(q) != []
    for warning in q["warnings"]:
        assert f"genlab: warning: {warning}" in err.splitlines()
    printed = [line.split(":")[0] for line in stdout.splitlines()]
    assert printed.index("coverage") < printed.index("precision")  # the headline figures first
