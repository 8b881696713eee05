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


def train_args(out: Path, *args: str, data: str = "digits") -> list[str]:
    sets = [a for s in SETTINGS for a in ("--set", s)]
    return ["train", "mlp", "--data", data, "--out", str(out), "--quiet", *sets, *args]


def torchrun(out: Path, *args: str, data: str = "digits") -> subprocess.Popen:
    """Start `torchrun --standalone --nproc_per_node=2 -m genlab train ...` (not waited for)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*cmd, "-m", "genlab", *train_args(out, *args, data=data)],
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
    # the refusal does not depend on the data: a small CSV spares the workers importing sklearn
    table = root / "table.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(100)))
    bad = torchrun(root / "bad", "--steps", "6", "--set", BAD_BATCH, data=str(table))
    try:
        # meanwhile, the single-process references: the same command line in this process
        assert genlab_main(train_args(root / "one-3", "--steps", "3")) == 0
        assert genlab_main(train_args(root / "one-6", "--steps", "6")) == 0
        part_result, bad_result = finish(part), finish(bad)
    finally:
        for proc in (part, bad):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    succeeded(part_result)
    # continue a copy of the 3-step run under torchrun up to step 6
    shutil.copytree(root / "ddp-3", root / "ddp-6", symlinks=True)
    succeeded(finish(torchrun(root / "ddp-6", "--resume", "--steps", "6")))
    return {name: root / name for name in ("ddp-3", "ddp-6", "one-3", "one-6")} | {
        "bad": root / "bad",
        "bad_result": bad_result,
    }


def latest_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "latest" / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = latest_weights(a), latest_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), (k, (wa[k] - wb[k]).abs().max())


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_metrics(a: Path, b: Path) -> None:
    """The same lines in the same order with the same values (examples_per_s aside)."""
    ra, rb = rows(a), rows(b)
    assert [(r["step"], r["split"]) for r in ra] == [(r["step"], r["split"]) for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert x.keys() == y.keys()
        for k in x.keys() - {"examples_per_s"}:
            same = (
                x[k] == pytest.approx(y[k], rel=1e-5) if isinstance(y[k], float) else x[k] == y[k]
            )
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
