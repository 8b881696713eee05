"""What `genlab eval` leaves behind and shows: result files named by the data they scored,
--max-examples, --split all with a CSV of anomaly scores, and sample-quality warnings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import genlab
from conftest import tiny_overrides
from genlab.cli import main
from genlab.data import load_dataset


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
    found = {e["file"]: e for e in genlab.evaluations(vae_run)}
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
