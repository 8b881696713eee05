"""The `genlab` command line: exit statuses, one-line errors, and small real flows.

Most tests run the installed console script in a subprocess (`run_cli`). Errors that need no
subprocess to be believed (argument and config checks) call `genlab.cli.main` in-process, which
is what the console script runs, to keep the file fast.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import genlab
from conftest import ROOT, genlab_cmd, run_cli
from genlab.cli import main
from genlab.data import KINDS
from genlab.registry import FAMILIES

TINY_VAE = "--set model.channels=[8,16] --set model.hidden=32 --set model.latent_dim=4"


def argv(template: str, **paths: Path) -> list[str]:
    """Command-line words of `template`; {name} words become the given paths, spaces and all."""
    return [word.format(**paths) for word in template.split()]


def one_line_error(r: subprocess.CompletedProcess, verb: str, status: int) -> str:
    """The single `genlab VERB: error: ...` line of a failed command."""
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"genlab {verb}: error: "), lines[0]
    return lines[0]


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `genlab ARGS` run in this process."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def in_process_error(capsys, status: int, *args: str) -> str:
    """The single error line of `genlab ARGS` run in this process."""
    rc, _, err = in_process(capsys, *args)
    assert rc == status, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"genlab {args[0]}: error: "), lines[0]
    return lines[0]


def grid_ratio(cols: int, rows: int, size: int = 8, pad: int = 2) -> float:
    """Width / height of a PNG grid of `rows` x `cols` square images."""
    return (cols * (size + pad) + pad) / (rows * (size + pad) + pad)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file's content hash and every link's target under `folder`."""
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        if p.is_symlink():
            out[key] = "-> " + os.readlink(p)
        elif p.is_file():
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


# help, list, usage errors ------------------------------------------------------------------


def test_help_lists_the_verbs_and_train_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for verb in ("list", "train", "sample", "eval", "--debug"):
        assert verb in out
    r = run_cli("train", "--help")  # the installed script
    assert r.returncode == 0, r.stderr
    assert "examples:" in r.stdout
    assert "genlab train vae --data digits --out" in r.stdout
    for option in ("--data", "--out", "--set", "--resume", "--print-config", "--debug"):
        assert option in r.stdout


def test_list_shows_every_family_and_builtin_once():
    r = run_cli("list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name, (cls, presets) in FAMILIES.items():
        mine = [x for x in lines if x.split()[:1] == [name]]
        assert len(mine) == 1, (name, r.stdout)
        kind = "discriminative" if cls.discriminative else "generative"
        if not cls.discriminative and not cls.generates():
            kind = "representation"
        assert mine[0].split()[1] == kind
        assert all(p in mine[0] for p in presets)
    for name in ("digits", "mnist-sample"):
        assert len([x for x in lines if x.split()[:1] == [name]]) == 1, (name, r.stdout)
    for name, kind in KINDS.items():  # what --data reads and --out writes, per data kind
        (mine,) = [x for x in lines if x.split()[:1] == [name]]
        assert kind.description in mine and mine.endswith(", ".join(kind.suffixes))


def test_no_verb_is_a_usage_error_that_shows_the_verbs(capsys):
    rc, out, err = in_process(capsys)
    assert rc == 2
    assert all(verb in out + err for verb in ("list", "train", "sample", "eval"))


def test_unknown_family_suggests_the_near_miss(capsys, tmp_path):
    args = argv("train vea --data digits --out {r}", r=tmp_path / "R")
    line = in_process_error(capsys, 2, *args)
    assert "'vea'" in line and "did you mean vae?" in line
    assert not (tmp_path / "R").exists()


def test_missing_data_is_one_line_exit_1_and_debug_shows_the_traceback(tmp_path):
    args = argv("train vae --data /nonexistent --out {r}", r=tmp_path / "R")
    line = one_line_error(run_cli(*args), "train", 1)
    assert "/nonexistent" in line and "IDX" in line  # what is wrong and what to give instead
    assert not (tmp_path / "R").exists()
    r = run_cli(*args, "--debug")  # --debug after the verb, where a user adds it
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == line


def test_debug_before_the_verb_shows_the_traceback_too(capsys, tmp_path):
    args = argv("--debug train vae --data /nonexistent --out {r}", r=tmp_path / "R")
    rc, _, err = in_process(capsys, *args)
    assert rc == 1
    assert "Traceback (most recent call last)" in err and "DataError" in err


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train.lrr=0.1", ["'train.lrr'", "did you mean train.lr"]),
        ("model.latnt_dim=8", ["'model.latnt_dim'", "did you mean model.latent_dim"]),
        ("train.steps=abc", ["train.steps", "integer", "abc"]),
        ("train.steps=0", ["train.steps", "at least 1"]),
        ("train", ["key.path=value"]),
    ],
)
def test_bad_settings_are_usage_errors(capsys, tmp_path, override, words):
    args = argv("train vae --data digits --out {r} --set", r=tmp_path / "R")
    line = in_process_error(capsys, 2, *args, override)
    assert all(w in line for w in words), line
    assert not (tmp_path / "R").exists()


def test_unknown_builtin_name_is_a_data_error(capsys, tmp_path):
    args = argv("train vae --data digitz --out {r}", r=tmp_path / "R")
    line = in_process_error(capsys, 1, *args)
    assert "'digitz'" in line and "digits, mnist-sample" in line


def test_train_without_data_is_a_usage_error(capsys, tmp_path):
    line = in_process_error(capsys, 2, "train", "vae", "--out", str(tmp_path / "R"))
    assert "--data" in line


def test_unknown_preset_lists_presets(capsys, tmp_path):
    args = argv("train vae --data digits --out {r} --preset demoo", r=tmp_path / "R")
    line = in_process_error(capsys, 2, *args)
    assert "demo, mnist" in line


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "vae", "--data", "digits", "--out", "R", "--steps", "ten"])
    assert e.value.code == 2
    assert "--steps" in capsys.readouterr().err


def test_train_without_out_is_a_usage_error(capsys):
    line = in_process_error(capsys, 2, "train", "vae", "--data", "digits")
    assert "--out" in line


def test_print_config_prints_json_with_overrides_and_options_applied(capsys, tmp_path):
    args = argv(
        "train vae --data digits --out {r} --preset demo --set train.lr=5e-4 "
        "--set model.channels=16,32 --steps 30 --seed 3 --print-config",
        r=tmp_path / "R",
    )
    rc, out, _ = in_process(capsys, *args)
    assert rc == 0
    cfg = json.loads(out)  # stdout is pure JSON
    assert cfg["train"]["lr"] == 0.0005
    assert cfg["model"]["channels"] == [16, 32]
    assert (cfg["train"]["steps"], cfg["train"]["seed"]) == (30, 3)  # as train would use them
    assert cfg["model"]["hidden"] == 256  # from the preset
    assert not (tmp_path / "R").exists()


def test_sample_and_eval_of_a_folder_that_is_not_a_run(capsys, tmp_path):
    for verb in ("sample", "eval"):
        line = in_process_error(capsys, 2, verb, str(tmp_path))
        assert "not a genlab run directory" in line and "genlab train" in line
        line = in_process_error(capsys, 2, verb, str(tmp_path / "missing"))
        assert "no run directory" in line


# a VAE on digits: train, sample, eval, resume -----------------------------------------------


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("vae") / "RUN"
    r = run_cli(
        *argv("train vae --data digits --out {run} --steps 30 --quiet", run=run),
        *argv(TINY_VAE + " --set train.eval_every=15"),
    )
    assert r.returncode == 0, r.stderr
    assert f"genlab sample {run}" in r.stdout  # the summary says what to do next
    return run


def test_train_writes_a_self_describing_run(vae_run):
    meta = json.loads((vae_run / "run.json").read_text())
    assert meta["family"] == "vae"
    assert meta["genlab_version"] == genlab.__version__
    assert meta["config"]["model"]["channels"] == [8, 16]
    assert meta["config"]["model"]["latent_dim"] == 4
    assert meta["config"]["train"]["steps"] == 30
    assert meta["data"]["source"] == "digits"
    assert re.fullmatch(r"[0-9a-f]{64}", meta["data"]["fingerprint"])
    assert metrics(vae_run)[-1]["step"] == 30
    assert (vae_run / "checkpoints" / "latest" / "model.safetensors").exists()


def test_sample_writes_png_and_npy(vae_run, tmp_path):
    r = run_cli("sample", str(vae_run), "-n", "16", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "x.png") as img:
        assert img.format == "PNG"
        assert img.width / img.height == pytest.approx(grid_ratio(4, 4))
    r = run_cli("sample", str(vae_run), "-n", "16", "--out", str(tmp_path / "x.npy"))
    assert r.returncode == 0, r.stderr
    arr = np.load(tmp_path / "x.npy")
    assert arr.shape == (16, 1, 8, 8)
    assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1


def test_sample_interpolate_and_reconstruct(vae_run, tmp_path):
    out = tmp_path / "interp.png"
    r = run_cli("sample", str(vae_run), "--interpolate", "5", "-n", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    with Image.open(out) as img:  # 3 rows of 5 steps
        assert img.width / img.height == pytest.approx(grid_ratio(5, 3))
    out = tmp_path / "recon.png"
    r = run_cli("sample", str(vae_run), "--reconstruct", "-n", "8", "--out", str(out))
    assert r.returncode == 0, r.stderr
    with Image.open(out) as img:  # 8 originals above their 8 reconstructions
        assert img.width / img.height == pytest.approx(grid_ratio(8, 2))


def test_print_config_with_resume_shows_the_runs_configuration(vae_run, capsys):
    args = argv("train vae --out {run} --resume --steps 50 --print-config", run=vae_run)
    rc, out, _ = in_process(capsys, *args)
    assert rc == 0
    cfg = json.loads(out)
    assert cfg["model"]["latent_dim"] == 4 and cfg["train"]["eval_every"] == 15  # the run's
    assert cfg["train"]["steps"] == 50


def test_sample_to_an_unknown_format_is_a_usage_error(vae_run, capsys, tmp_path):
    line = in_process_error(
        capsys, 2, "sample", str(vae_run), "-n", "2", "--out", str(tmp_path / "x.txt")
    )
    assert ".png, .npy" in line and "x.txt" in line
    assert not (tmp_path / "x.txt").exists()


def test_a_sampling_option_the_family_does_not_take_is_a_usage_error(vae_run, capsys, tmp_path):
    line = in_process_error(
        capsys, 2, "sample", str(vae_run), "--class", "3", "--out", str(tmp_path / "x.png")
    )
    assert "'vae' sampling does not take --class; it takes --temperature" in line
    assert not (tmp_path / "x.png").exists()


def test_an_output_that_cannot_be_written_is_one_line_naming_it(vae_run, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where a folder is needed: fails for root too
    out = blocker / "x.png"
    line = in_process_error(capsys, 1, "sample", str(vae_run), "-n", "2", "--out", str(out))
    assert str(blocker) in line
    rc, _, err = in_process(capsys, "eval", str(vae_run), "--json", str(blocker / "m.json"))
    assert rc == 1 and "Traceback" not in err
    line = err.strip().splitlines()[-1]  # after the metrics it printed
    assert line.startswith("genlab eval: error: ") and str(blocker) in line


@pytest.mark.parametrize(
    "words, message",
    [
        ("--batch-size 0", "--batch-size must be at least 1; got 0"),
        ("--samples -5", "--samples must be at least 10; got -5"),
        ("--samples 20 --feature-steps 0", "--feature-steps must be at least 1; got 0"),
    ],
)
def test_eval_numbers_are_checked_before_any_judge_is_trained(
    vae_run, capsys, tmp_path, monkeypatch, words, message
):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    line = in_process_error(capsys, 2, "eval", str(vae_run), *words.split())
    assert line.endswith(message)
    assert not (tmp_path / "cache").exists()  # no judge was trained for a bad setting


def test_eval_reports_nll_bits_per_dim_and_anomaly_scores(vae_run, tmp_path):
    out = tmp_path / "m.json"
    r = run_cli("eval", str(vae_run), "--json", str(out), "--iw-samples", "10", "--anomaly-scores")
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert f"nll_nats: {m['nll_nats']:.6g}" in r.stdout
    assert m["iw_samples"] == 10
    assert m["bits_per_dim"] == pytest.approx(m["nll_nats"] / (64 * math.log(2)), abs=1e-6)
    # the importance-weighted bound is at least as tight as the ELBO (up to sampling noise)
    assert m["neg_elbo_nats"] >= m["nll_nats"] - 0.1
    # digits are grey (17 levels): model.likelihood=auto picks the discretized Gaussian, so the
    # NLL must beat a uniform guess among the 17 levels of each of the 64 pixels
    assert json.loads((vae_run / "run.json").read_text())["config"]["model"]["likelihood"] == (
        "gaussian"
    )
    assert 0 < m["nll_nats"] < 64 * math.log(17)
    n_test = json.loads((vae_run / "run.json").read_text())["data"]["n_test"]
    assert m["examples"] == n_test == len(m["anomaly_scores"])
    assert all(math.isfinite(s) for s in m["anomaly_scores"])


def test_training_into_an_existing_run_without_resume_leaves_it_untouched(vae_run):
    before = snapshot(vae_run)
    r = run_cli(*argv("train vae --data digits --out {run} --steps 5 --quiet", run=vae_run))
    line = one_line_error(r, "train", 2)
    assert "already holds a run" in line and "--resume" in line
    assert snapshot(vae_run) == before


def test_resume_continues_to_the_new_step_count(vae_run, tmp_path):
    run = tmp_path / "RUN"
    shutil.copytree(vae_run, run, symlinks=True)
    r = run_cli("train", "vae", "--out", str(run), "--resume", "--steps", "40", "--quiet")
    assert r.returncode == 0, r.stderr
    rows = metrics(run)
    assert rows[-1]["step"] == 40
    steps = [(x["split"], x["step"]) for x in rows]
    assert len(steps) == len(set(steps))  # no step logged twice
    assert [s for _, s in steps] == sorted(s for _, s in steps)
    assert os.readlink(run / "checkpoints" / "latest") == "step-0000040"
    assert json.loads((run / "run.json").read_text())["config"]["train"]["steps"] == 40


# discriminative and tabular runs -----------------------------------------------------------


def test_mlp_cannot_sample_and_eval_prints_accuracy(tmp_path):
    run = tmp_path / "R2"
    r = run_cli(*argv("train mlp --data digits --out {run} --steps 30 --quiet", run=run))
    assert r.returncode == 0, r.stderr
    line = one_line_error(run_cli("sample", str(run)), "sample", 2)
    assert "discriminative" in line and "genlab eval" in line
    r = run_cli("eval", str(run))
    assert r.returncode == 0, r.stderr
    accuracy = float(re.search(r"^accuracy: (\S+)$", r.stdout, re.M).group(1))
    assert 0.2 < accuracy <= 1  # chance is 0.1 on ten digits
    saved = json.loads((run / "eval-test.json").read_text())
    assert saved["accuracy"] == pytest.approx(accuracy, abs=1e-5)


def test_csv_regression_beats_the_target_spread(tmp_path):
    rng = random.Random(0)
    shift = {"red": 1.0, "green": 0.0, "blue": -1.0}
    rows, ys = ["a,b,color,y"], []
    for _ in range(200):
        a, b, color = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.choice(list(shift))
        y = 3 * a - 2 * b + shift[color] + rng.gauss(0, 0.1)
        rows.append(f"{a:.4f},{b:.4f},{color},{y:.4f}")
        ys.append(y)
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "R3"
    r = run_cli(
        *argv(
            "train mlp --data {csv} --out {run} --set data.target=y --set model.hidden=[32] "
            "--steps 200 --quiet",
            csv=tmp_path / "table.csv",
            run=run,
        )
    )
    assert r.returncode == 0, r.stderr
    info = json.loads((run / "run.json").read_text())["data"]
    assert info["task"] == "regression" and "color=red" in info["record"]["feature_names"]
    r = run_cli("eval", str(run), "--json", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    assert f"rmse: {m['rmse']:.6g}" in r.stdout
    assert m["rmse"] < 0.5 * float(np.std(ys))


# Ctrl-C -------------------------------------------------------------------------------------


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    run = tmp_path / "RUN"
    proc = subprocess.Popen(
        [
            *genlab_cmd(),
            *argv("train vae --data digits --out {run} --steps 100000 --quiet", run=run),
            *argv(TINY_VAE + " --set train.log_every=5"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    try:
        deadline = time.monotonic() + 120
        log = run / "metrics.jsonl"
        while not (log.exists() and log.read_text().strip()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no metrics line within 120 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--resume" in lines[0], err
    step = int(re.search(r"interrupted at step (\d+)", lines[0]).group(1))
    assert 5 <= step < 100000
    latest = run / "checkpoints" / "latest"
    assert (latest / "model.safetensors").exists()
    assert os.readlink(latest) == f"step-{step:07d}"
    r = run_cli(
        *argv("sample {run} --which latest -n 4 --out {png}", run=run, png=tmp_path / "s.png")
    )
    assert r.returncode == 0, r.stderr
    assert f"step-{step:07d}" in r.stdout
    with Image.open(tmp_path / "s.png") as img:
        assert img.format == "PNG"
