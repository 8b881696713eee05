"""Training under PyTorch's own launcher (torchrun) with 2 CPU processes and gloo.

The same command with the same global train.batch_size must learn what one process learns,
write one metrics.jsonl from rank 0 only, resume like one process, and refuse a batch size the
processes cannot share. The single-process references run the same `genlab train` command line
through genlab.cli.main in this process (no second interpreter start: the tests stay fast).

The launches are the slow part (two interpreters importing torch on 2 cores), so they are few
and the two independent ones run at the same time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from conftest import ROOT, tiny_overrides
from genlab.cli import main as genlab_main

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this PyTorch build has no torch.distributed with the gloo backend",
)

# constant after a warm-up: the learning rate of a step does not depend on the total step count,
# so "--steps 3, then --resume --steps 6" is comparable to a straight 6-step run
SETTINGS = [*tiny_overrides("mlp"), "train.schedule=constant", "train.warmup_steps=2"]
BAD_BATCH = "train.batch_size=33"
# the GAN: its own train_step with two optimizers, batch norm in the generator, noise per step,
# the EMA of its weights
GAN_SETTINGS = [*tiny_overrides("gan"), "train.ema_decay=0.9"]


def train_args(out: Path, *args: str, data: str = "digits", family: str = "mlp") -> list[str]:
    settings = GAN_SETTINGS if family == "gan" else SETTINGS
    sets = [a for s in settings for a in ("--set", s)]
    return ["train", family, "--data", data, "--out", str(out), "--quiet", *sets, *args]


def torchrun(out: Path, *args: str, data: str = "digits", family: str = "mlp") -> subprocess.Popen:
    """Start `torchrun --standalone --nproc_per_node=2 -m genlab train ...` (not waited for)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*cmd, "-m", "genlab", *train_args(out, *args, data=data, family=family)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: a timeout ends launcher and workers
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"torchrun failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Run directories by name, and the result of the launch with an indivisible batch size."""
    root = tmp_path_factory.mktemp("distributed")
    part = torchrun(root / "ddp-3", "--steps", "3")
    gan = torchrun(root / "gan-ddp", "--steps", "5", family="gan")
    # the refusal does not depend on the data: a small CSV spares the workers importing sklearn
    table = root / "table.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(100)))
    bad = torchrun(root / "bad", "--steps", "6", "--set", BAD_BATCH, data=str(table))
    try:
        # meanwhile, the single-process references: the same command line in this process
        assert genlab_main(train_args(root / "one-3", "--steps", "3")) == 0
        assert genlab_main(train_args(root / "one-6", "--steps", "6")) == 0
        assert genlab_main(train_args(root / "gan-one", "--steps", "5", family="gan")) == 0
        part_result, bad_result, gan_result = finish(part), finish(bad), finish(gan)
    finally:
        for proc in (part, bad, gan):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    succeeded(part_result)
    succeeded(gan_result)
    # continue a copy of the 3-step run under torchrun up to step 6
    shutil.copytree(root / "ddp-3", root / "ddp-6", symlinks=True)
    succeeded(finish(torchrun(root / "ddp-6", "--resume", "--steps", "6")))
    names = ("ddp-3", "ddp-6", "one-3", "one-6", "gan-ddp", "gan-one")
    return {name: root / name for name in names} | {
        "bad": root / "bad",
        "bad_result": bad_result,
    }


def latest_weights(run: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "latest" / name))


def assert_same_weights(a: Path, b: Path, name: str = "model.safetensors") -> None:
    wa, wb = latest_weights(a, name), latest_weights(b, name)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), (k, (wa[k] - wb[k]).abs().max())


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_metrics(a: Path, b: Path) -> None:
    """The same lines in the same order with the same values (rates and times aside)."""
    ra, rb = rows(a), rows(b)
    assert [(r["step"], r["split"]) for r in ra] == [(r["step"], r["split"]) for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert x.keys() == y.keys()
        for k in x.keys() - {"examples_per_s", "elapsed_s"}:
            if isinstance(y[k], float):
                same = x[k] == pytest.approx(y[k], rel=1e-5, abs=1e-6)
            else:
                same = x[k] == y[k]
            assert same, (k, x, y)


def test_two_processes_learn_the_weights_one_process_learns(runs):
    assert_same_weights(runs["ddp-3"], runs["one-3"])
    assert os.readlink(runs["ddp-3"] / "checkpoints" / "latest") == "step-0000003"


def test_only_rank_0_writes_one_metrics_line_per_logged_step(runs):
    run = runs["ddp-3"]
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*.jsonl")) == ["metrics.jsonl"]
    assert [(r["step"], r["split"]) for r in rows(run)] == [
        (1, "train"),
        (2, "train"),
        (3, "train"),
        (3, "val"),
    ]
    # the logged training loss is that of the global batch, as with one process
    assert_same_metrics(run, runs["one-3"])
    assert sorted(os.listdir(run / "checkpoints")) == [
        "best",
        "latest",
        "step-0000002",
        "step-0000003",
    ]


def test_resume_under_torchrun_continues_like_one_uninterrupted_process(runs):
    run = runs["ddp-6"]
    assert os.readlink(run / "checkpoints" / "latest") == "step-0000006"
    assert json.loads((run / "checkpoints" / "latest" / "trainer.json").read_text())["step"] == 6
    assert_same_weights(run, runs["one-6"])
    assert_same_metrics(run, runs["one-6"])


def test_a_batch_size_the_processes_cannot_share_is_refused(runs):
    result = runs["bad_result"]
    assert result.returncode != 0  # torchrun's own status; each worker's is reported below
    assert (
        "genlab train: error: train.batch_size 33 must divide evenly among 2 processes"
        in result.stderr
    )
    assert re.search(r"exitcode\s*:\s*2\b", result.stderr), result.stderr[-3000:]
    assert not runs["bad"].exists()  # refused before anything was written


def test_the_gan_trains_under_torchrun_as_in_one_process(runs):
    """Its own train_step (two optimizers, a discriminator and a generator update per batch),
    its batch norm (synced over the global batch) and its noise (drawn for the global batch):
    two processes learn, to 1e-6, what one process learns, loss curve and weights alike."""
    ddp, one = runs["gan-ddp"], runs["gan-one"]
    assert [(r["step"], r["split"]) for r in rows(ddp)] == [
        (r["step"], r["split"]) for r in rows(one)
    ]
    for a, b in zip(rows(ddp), rows(one), strict=True):
        for k in ("loss", "g_loss", "d_real_acc", "d_fake_acc"):
            assert a[k] == pytest.approx(b[k], abs=1e-6), (k, a, b)
    assert_same_weights(ddp, one)
    assert_same_weights(ddp, one, "ema.safetensors")
    # (the compared weights include the batch norm's running statistics of the global batch)
    assert "generator.project.1.running_mean" in latest_weights(ddp)
