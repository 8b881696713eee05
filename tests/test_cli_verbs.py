"""The everyday verbs of issue 10: runs, info, plot, predict, export, files per sample, and the
messages a new user reads (next steps, hints, --version without torch).

Runs are trained once per module in this process on the built-in digits (8x8), with the tiny
configurations of the contract tests; the verbs are called in-process through `genlab.cli.main`
except where the process itself is what is checked (--version).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import genlab
from conftest import tiny_overrides
from genlab.cli import main


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `genlab ARGS` run in this process."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def error(capsys, status: int, *args: str) -> str:
    """The single error line of a failing `genlab ARGS`."""
    rc, _, err = cli(capsys, *args)
    assert rc == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tiny_run(out: Path, family: str, steps: int = 6, data: str = "digits", *extra: str) -> Path:
    return genlab.train(
        family,
        data,
        out,
        overrides=tiny_overrides(family, *extra),
        steps=steps,
        quiet=True,
    )


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """runs/mlp and runs/cnn (classifiers of the digits) and runs/vae."""
    root = tmp_path_factory.mktemp("verbs") / "runs"
    tiny_run(root / "mlp", "mlp")
    tiny_run(root / "cnn", "cnn")
    tiny_run(root / "vae", "vae", 4)
    return root


# 12. genlab runs / genlab info ------------------------------------------------------------------
def test_runs_lists_each_run_with_family_data_steps_best_figure_and_time(runs_dir, capsys):
    rc, out, _ = cli(capsys, "runs", runs_dir, "--sort", "name")
    assert rc == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["run", "family", "data", "steps", "best", "time"]
    assert [line.split()[:4] for line in lines[1:]] == [
        [str(runs_dir / "cnn"), "cnn", "digits", "6/6"],
        [str(runs_dir / "mlp"), "mlp", "digits", "6/6"],
        [str(runs_dir / "vae"), "vae", "digits", "4/4"],
    ]
    state = json.loads((runs_dir / "mlp" / "checkpoints" / "latest" / "trainer.json").read_text())
    assert f"loss {state['best_val']:.4g} @{state['best_step']}" in lines[2]

    rc, out, _ = cli(capsys, "runs", runs_dir, "--json", "--sort", "metric")
    table = json.loads(out)
    best = [r["best"] for r in table]
    assert best == sorted(best)  # every run ranks by its validation loss: lowest first
    assert all(r["wall_s"] > 0 and r["problem"] == "" for r in table)


def test_runs_survives_a_damaged_run_and_refuses_a_missing_folder(runs_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(runs_dir / "mlp", root / "good")
    (root / "bad").mkdir()
    (root / "bad" / "run.json").write_text("{not json")
    rc, out, _ = cli(capsys, "runs", root, "--sort", "name")
    assert rc == 0
    bad, good = out.strip().splitlines()[1:]
    assert "damaged" in bad and "run.json" in bad
    assert good.split()[1:4] == ["mlp", "digits", "6/6"]
    assert "no folder at" in error(capsys, 2, "runs", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "no runs under" in cli(capsys, "runs", tmp_path / "empty")[1]


def test_info_verifies_checkpoints_and_shows_evaluations(runs_dir, tmp_path, capsys):
    run = tmp_path / "mlp"
    shutil.copytree(runs_dir / "mlp", run, symlinks=True)
    assert cli(capsys, "eval", run)[0] == 0
    first = sorted((run / "checkpoints").glob("step-*"))[0]
    weights = first / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    weights.write_bytes(bytes(data))

    rc, out, _ = cli(capsys, "info", run)
    assert rc == 0
    assert f"{first.name}" in out and "damaged: model.safetensors does not match its sha256" in out
    assert "ok  <- best, latest" in out
    assert "eval-test.json: " in out and "accuracy" in out
    assert "model.hidden=[32]" in out  # settings as --set takes them

    rc, out, _ = cli(capsys, "info", run, "--json")
    d = json.loads(out)
    assert d["family"] == "mlp" and d["summary"]["step"] == 6
    status = {c["name"]: c["status"] for c in d["checkpoints"]}
    assert status[first.name].startswith("damaged") and list(status.values())[-1] == "ok"
    scored = json.loads((run / "eval-test.json").read_text())
    assert d["evaluations"]["eval-test.json"]["accuracy"] == scored["accuracy"]
    assert "not a genlab run directory" in error(capsys, 2, "info", tmp_path)


def test_training_time_adds_up_over_a_resume(tmp_path):
    run = tiny_run(tmp_path / "run", "mlp", 4)
    first = [r["elapsed_s"] for r in map(json.loads, (run / "metrics.jsonl").open())][-1]
    genlab.train("mlp", "", run, steps=8, resume=True, quiet=True)
    times = [r["elapsed_s"] for r in map(json.loads, (run / "metrics.jsonl").open())]
    assert times == sorted(times) and times[-1] > first > 0


# 13. genlab plot --------------------------------------------------------------------------------
def test_curves_are_the_journal_figures_by_split(runs_dir):
    from genlab.io.runs import curves

    logged = curves(runs_dir / "mlp")
    records = [json.loads(x) for x in (runs_dir / "mlp" / "metrics.jsonl").read_text().splitlines()]
    for split in ("train", "val"):
        want = [(r["step"], r["loss"]) for r in records if r["split"] == split]
        assert logged["loss"][split] == want and want
    assert "early_stop" not in logged and "elapsed_s" not in logged  # not figures


def test_plot_draws_several_runs_on_one_png(runs_dir, tmp_path, capsys):
    from PIL import Image

    one, both = tmp_path / "one.png", tmp_path / "both.png"
    assert cli(capsys, "plot", runs_dir / "mlp", "--out", one)[0] == 0
    rc, out, _ = cli(capsys, "plot", runs_dir / "mlp", runs_dir / "cnn", "--out", both, "--log")
    assert rc == 0 and out.strip() == f"wrote {both}"
    with Image.open(one) as a, Image.open(both) as b:
        assert a.format == b.format == "PNG" and a.width > 400 and a.height > 300
        assert a.tobytes() != b.tobytes()  # the second run's curves are on the figure
    rc, out, _ = cli(capsys, "plot", runs_dir / "mlp", "--metric", "accuracy")
    assert (runs_dir / "mlp" / "curves-accuracy.png").is_file()  # default: beside the run


def test_plot_refuses_a_figure_a_run_did_not_log(runs_dir, tmp_path, capsys):
    line = error(capsys, 2, "plot", runs_dir / "mlp", runs_dir / "vae", "--metric", "accuracy")
    assert f"{runs_dir / 'vae'} logged no 'accuracy'; it has loss" in line
    assert "writes a PNG" in error(capsys, 2, "plot", runs_dir / "mlp", "--out", tmp_path / "x.jpg")
    assert "not a genlab run directory" in error(capsys, 2, "plot", tmp_path)
