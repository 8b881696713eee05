"""`genlab train --tracker mlflow|tensorboard`: settings, metrics and files reach a local store
of the tracker, and the run directory is the same as without one."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, tiny_overrides


def train(tmp_path, tracker: str):
    sets = [w for o in tiny_overrides("vae") for w in ("--set", o)]
    out = tmp_path / tracker
    r = run_cli("train", "vae", "--data", "digits", "--out", str(out), "--steps", "6",
                "--quiet", "--tracker", tracker, *sets)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_mlflow_gets_params_metrics_and_artifacts(tmp_path):
    pytest.importorskip("mlflow", reason="the tracking extra is not installed")
    from mlflow.tracking import MlflowClient

    out = train(tmp_path, "mlflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{out.resolve() / 'mlflow.db'}")
    (exp,) = [e for e in client.search_experiments() if e.name == "mlflow"]
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["family"] == "vae" and run.data.params["train.steps"] == "6"
    history = client.get_metric_history(run.info.run_id, "val/loss")
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in logged if r["split"] == "val"]
    assert [m.step for m in history] == [r["step"] for r in val]
    assert history[-1].value == pytest.approx(val[-1]["loss"])
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"run.json", "metrics.jsonl", "checkpoint-best"} <= names
    assert run.info.status == "FINISHED"


def test_tensorboard_gets_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="the tracking extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = train(tmp_path, "tensorboard")
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in logged if r["split"] == "train"]
    assert [e.step for e in acc.Scalars("train/loss")] == train_steps
    assert "val/loss" in acc.Tags()["scalars"]


def test_unknown_tracker_is_a_usage_error(tmp_path):
    r = run_cli("train", "vae", "--data", "digits", "--out", str(tmp_path / "x"),
                "--tracker", "wandb")  # fmt: skip
    assert r.returncode == 2 and "invalid choice: 'wandb'" in r.stderr
