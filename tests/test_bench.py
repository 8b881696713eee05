"""`genlab bench`: families side by side under one budget, one table, resumable."""

from __future__ import annotations

import json

import pytest

import genlab
from conftest import FEATURE_STEPS, TINY, run_cli
from genlab.bench import bench, family_overrides, parse_families
from genlab.errors import DataError, UsageError

FAMILIES = ["vae", "gan", "pixelcnn"]
TINY_SETS = [f"{f}:{o}" for f in FAMILIES for o in TINY[f]] + ["train.batch_size=32"]


def run_bench(out, **kw):
    args = dict(
        families=FAMILIES,
        budget_minutes=0.02,
        samples=30,
        overrides=TINY_SETS,
        feature_steps=FEATURE_STEPS,
        calibration_steps=2,
    )
    return bench("digits", out, **(args | kw))


def test_bench_trains_evaluates_and_resumes(tmp_path, feature_cache, monkeypatch):
    out = tmp_path / "bench"
    comparison = run_bench(out)
    fams = comparison["families"]
    assert list(fams) == FAMILIES
    for name, r in fams.items():
        for key in ("fd", "kid", "precision", "recall", "classes_covered", "nn_distance"):
            assert key in r and f"{key}_real" in r, (name, key)
        assert r["train_seconds"] > 0 and r["sample_ms_per_image"] > 0 and r["steps"] >= 10
        assert (
            r["parameters"]
            == json.loads((out / "runs" / name / "run.json").read_text())["parameters"]
        )
        assert (out / f"samples-{name}.png").stat().st_size > 0
    # likelihoods where a family has one, on the same test images
    assert "nll_nats" in fams["vae"] and "nll_nats" in fams["pixelcnn"]
    assert "nll_nats" not in fams["gan"]
    # the same seed and reference give every family the same real-vs-real baseline
    assert len({r["fd_real"] for r in fams.values()}) == 1
    assert comparison["real"]["fd"] == fams["vae"]["fd_real"]
    table = (out / "comparison.md").read_text()
    assert "| metric | real (test vs train) | vae | gan | pixelcnn |" in table
    assert "| Frechet distance (cnn features) |" in table and "test NLL" in table
    assert json.loads((out / "comparison.json").read_text()) == comparison

    # repeating the command reuses every finished family: nothing is trained again
    def no_training(*args, **kwargs):
        raise AssertionError("a finished family was trained again")

    monkeypatch.setattr(genlab, "train", no_training)
    again = run_bench(out)
    assert again["families"] == fams
    with pytest.raises(UsageError, match="other settings"):
        run_bench(out, samples=40)


def test_bad_requests(tmp_path):
    with pytest.raises(UsageError, match="discriminative"):
        parse_families("vae,cnn")
    with pytest.raises(UsageError, match="unknown family 'gann'"):
        parse_families("vae,gann")
    with pytest.raises(UsageError, match="twice.*style=gan"):
        parse_families("gan,gan")
    sets = ["train.lr=1e-3", "gan:model.loss=hinge", "vae:model.beta=2"]
    assert family_overrides("gan", sets) == ["train.lr=1e-3", "model.loss=hinge"]
    with pytest.raises(UsageError, match="same data"):
        family_overrides("gan", ["gan:data.seed=3"])
    with pytest.raises(DataError, match="'gpt' needs token sequences"):
        bench("digits", tmp_path, families=["vae", "gpt"], budget_minutes=1)
    with pytest.raises(UsageError, match="did you mean model.beta"):
        bench("digits", tmp_path, families=["vae"], budget_minutes=1, overrides=["vae:model.bta=2"])
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_command_line_refuses_bad_input_before_training(tmp_path):
    r = run_cli("bench", "--data", "digits", "--out", str(tmp_path), "--families", "vae,mlp")
    assert r.returncode == 2 and "discriminative" in r.stderr


def test_an_interrupted_bench_resumes_and_counts_both_parts(tmp_path, feature_cache, monkeypatch):
    import signal

    from genlab.training.loop import Interrupted, Trainer

    out = tmp_path / "bench"
    step_once = Trainer.train_step

    def ctrl_c_at_step_5(self, step):
        result = step_once(self, step)
        if step == 4 and self.run_dir.name == "vae":  # the bench's run, not its calibration
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_at_step_5)
    with pytest.raises(Interrupted):
        run_bench(out, families=["vae"])
    monkeypatch.undo()
    spent = json.loads((out / "runs" / "vae" / "bench-progress.json").read_text())
    assert spent["train_seconds"] > 0
    r = run_bench(out, families=["vae"])["families"]["vae"]
    assert r["resumed"] and r["train_seconds"] > spent["train_seconds"]
    rows = [
        json.loads(x) for x in (out / "runs" / "vae" / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows[-1]["step"] == r["steps"]


def test_a_family_runs_twice_under_labels_on_a_cpu_budget(tmp_path, feature_cache, monkeypatch):
    """`style=gan` is a second gan run set apart by `style:` settings; --cpu-budget times the
    calibration on this process's CPU clock."""
    import time

    import genlab.bench as bench_module

    clocks = []
    calibrate = bench_module.calibrate

    def spy(family, cfg, dataset, steps=10, clock=time.perf_counter):
        clocks.append(clock)
        return calibrate(family, cfg, dataset, steps, clock)

    monkeypatch.setattr(bench_module, "calibrate", spy)
    gan = [f"gan:{o}" for o in TINY["gan"]]
    style = [f"style:{o}" for o in TINY["gan"]] + ["style:model.generator=style"]
    comparison = run_bench(
        tmp_path / "b",
        families=parse_families("gan,style=gan"),
        overrides=[*gan, *style, "train.batch_size=32"],
        cpu_budget=True,
    )
    assert clocks == [time.process_time, time.process_time]
    fams = comparison["families"]
    assert list(fams) == ["gan", "style"]
    generators = {
        name: json.loads((tmp_path / "b" / "runs" / name / "run.json").read_text())["config"][
            "model"
        ]["generator"]
        for name in fams
    }
    assert generators == {"gan": "dcgan", "style": "style"}
    assert (
        fams["style"]["family"] == "gan"
        and "model.generator=style" in fams["style"]["own_overrides"]
    )
    for r in fams.values():
        assert r["train_cpu_seconds"] > 0 and r["steps"] >= 10
    assert (tmp_path / "b" / "samples-style.png").exists()
    table = (tmp_path / "b" / "comparison.md").read_text()
    assert "| metric | real (test vs train) | gan | style |" in table
    assert "training CPU time (s)" in table

    # one family per call into the same folder, then all of them: each call keeps its own
    # label's settings, and the last one only assembles the table
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(genlab, "train", no_training)
    again = run_bench(
        tmp_path / "b",
        families=["style=gan", "gan"],
        overrides=[*style, *gan, "train.batch_size=32"],
        cpu_budget=True,
    )
    assert list(again["families"]) == ["style", "gan"]
    # a label now naming another family, or other settings of a label, are refused
    with pytest.raises(UsageError, match="holds a gan run, not vae"):
        run_bench(
            tmp_path / "b", families=["style=vae"], overrides=["train.batch_size=32"],
            cpu_budget=True,
        )  # fmt: skip
    with pytest.raises(UsageError, match="was trained with --set style: settings"):
        run_bench(
            tmp_path / "b", families=["gan", "style=gan"], overrides=[*gan, "train.batch_size=32"],
            cpu_budget=True,
        )  # fmt: skip
    with pytest.raises(UsageError, match="other settings"):
        run_bench(tmp_path / "b", families=["gan"], overrides=[*gan, "train.batch_size=32"])


def test_labels_and_prefixes_are_checked_before_anything_runs(tmp_path):
    style = ["style:model.generator=style"]
    assert family_overrides("style", style) == ["model.generator=style"]
    assert family_overrides("gan", style) == []
    # in the order given, so a later --set wins
    assert family_overrides("style", ["a=1", *style, "style:a=2"]) == [
        "a=1", "model.generator=style", "a=2",
    ]  # fmt: skip
    with pytest.raises(UsageError, match="not a usable label"):
        parse_families("a b=gan")
    with pytest.raises(UsageError, match="another family's name"):
        parse_families("vae=gan")
    with pytest.raises(UsageError, match="neither a label"):
        bench("digits", tmp_path / "c", families=["gan"], budget_minutes=1, overrides=["stlye:x=1"])
    with pytest.raises(UsageError, match="gan runs here as style; set it with --set style:"):
        bench(
            "digits", tmp_path / "c", families=["style=gan"], budget_minutes=1,
            overrides=["gan:model.loss=hinge"],
        )  # fmt: skip
    with pytest.raises(UsageError, match="not a usable label"):
        bench("digits", tmp_path / "c", families=["a/b=gan"], budget_minutes=1)
    with pytest.raises(UsageError, match="twice"):
        bench("digits", tmp_path / "c", families=["gan", "gan"], budget_minutes=1)
    with pytest.raises(UsageError, match="--cpu-budget applies to image and audio"):
        bench("wine", tmp_path / "c", families=["copula"], budget_minutes=1, cpu_budget=True)
    assert not (tmp_path / "c").exists()
