"""The run format: run.json and its schema, runs written before it, self-describing checkpoint
folders with verified file hashes, keep_last and --which, resuming past a damaged checkpoint or a
torn metrics line, and a run killed with SIGKILL while it writes checkpoints.

Runs are tiny seeded mlp (fast: no samples), vae (samples) and rnn (a tokenizer file that the
checkpoint folder must carry) runs on the built-in 8x8 digits or a small text
(conftest.tiny_overrides); runs written before run.json are the fixture tests/fixtures/run-v0-*."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from conftest import ROOT, genlab_cmd, run_cli, tiny_overrides
from genlab.cli import main
from genlab.errors import RunError, UsageError
from genlab.io.checkpoint import checkpoint_problem, resume_checkpoint
from genlab.io.journal import read_journal
from genlab.io.manifest import SCHEMA, read_manifest

LEGACY = ROOT / "tests" / "fixtures" / "run-v0-pixelcnn"


def train(run: Path, steps: int, *extra: str, family: str = "mlp", data="digits", **kw):
    return genlab.train(
        family,
        str(data),
        run,
        steps=steps,
        overrides=tiny_overrides(family, "train.ema_decay=0", *extra),
        quiet=True,
        **kw,
    )


def folders(run: Path) -> list[str]:
    """The checkpoint folders of a run, oldest first."""
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step-"))


def linked(run: Path, which: str) -> str:
    return os.readlink(run / "checkpoints" / which)


def damage(path: Path, offset: int | None = None, size: int = 4000) -> None:
    """Overwrite `size` bytes in the middle of a file with 0xFF, in place."""
    n = path.stat().st_size
    assert n > size, (path, n)
    offset = (n - size) // 2 if offset is None else offset
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def resume(capsys, run: Path, steps: int, family: str = "mlp") -> tuple[int, str, str]:
    """`genlab train FAMILY --out RUN --resume --steps STEPS`, in this process."""
    return cli(capsys, "train", family, "--out", str(run), "--resume", "--steps", str(steps))


def one_line(err: str, verb: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"genlab {verb}: error: "), lines[0]
    return lines[0]


def same_weights(a: Path, b: Path, name: str = "model.safetensors") -> bool:
    x, y = load_file(str(a / name)), load_file(str(b / name))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    """A finished 4-step vae run (it samples) with checkpoints at steps 2 and 4."""
    run = tmp_path_factory.mktemp("vae") / "run"
    return train(run, 4, "train.checkpoint_every=2", "train.eval_every=4", family="vae")


@pytest.fixture(scope="module")
def run8(tmp_path_factory) -> Path:
    """A finished 8-step run with a checkpoint every 2 steps and evaluations at 4 and 8."""
    run = tmp_path_factory.mktemp("run8") / "run"
    return train(run, 8, "train.checkpoint_every=2", "train.eval_every=4")


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, symlinks=True)
    return dest


# run.json ---------------------------------------------------------------------------------
def test_run_json_is_the_versioned_manifest_and_config_json_is_gone(run8):
    meta = json.loads((run8 / "run.json").read_text())
    assert meta["schema"] == SCHEMA == 1
    assert meta["genlab_version"] == genlab.__version__
    assert meta["family"] == "mlp"
    assert meta["config"]["model"]["hidden"] == [32]
    assert meta["config"]["train"]["steps"] == 8
    assert meta["config"]["train"]["keep_last"] == 3
    assert meta["data"]["source"] == "digits"
    assert len(meta["data_fingerprint"]) == 64
    assert meta["data_fingerprint"] == meta["data"]["fingerprint"]
    assert meta["parameters"] == sum(p.numel() for p in genlab.load(run8).parameters())
    assert meta["init_from"] is None
    assert meta["data_files"] == []
    assert not (run8 / "config.json").exists()


@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_a_newer_schema_is_a_one_line_error_that_says_to_upgrade(verb, run8, tmp_path, capsys):
    run = copy_run(run8, tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "schema": SCHEMA + 1}))
    status, _, err = cli(capsys, verb, str(run), "--out" if verb == "sample" else "--json", "x")
    assert status == 1
    line = one_line(err, verb)
    assert f"run format {SCHEMA + 1}" in line and "upgrade genlab" in line
    with pytest.raises(RunError, match="upgrade genlab"):
        genlab.load(run)


@pytest.mark.parametrize("schema", ["1", -1, 1.5, True])
def test_a_schema_that_is_not_a_version_number_is_refused(schema, run8, tmp_path):
    run = copy_run(run8, tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "schema": schema}))
    with pytest.raises(RunError, match="invalid schema"):
        genlab.load(run)


def test_a_folder_without_a_manifest_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not a genlab run directory"):
        genlab.load(tmp_path)


# runs written before run.json (schema 0) ---------------------------------------------------
def test_a_run_written_before_run_json_loads_as_schema_0_migrated_in_memory():
    meta = read_manifest(LEGACY)
    assert meta["schema"] == 1 and meta["family"] == "pixelcnn"
    assert meta["data_fingerprint"] == meta["data"]["fingerprint"]
    assert meta["init_from"] is None and meta["data_files"] == []
    assert "schema" not in json.loads((LEGACY / "config.json").read_text())  # file untouched
    assert not (LEGACY / "run.json").exists()
    model = genlab.load(LEGACY)
    assert model.checkpoint == "step-0000004"
    x = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all()
    old = genlab.load(LEGACY / "checkpoints" / "step-0000004")  # a legacy folder: its run's
    assert same_weights(LEGACY / "checkpoints" / "step-0000004", LEGACY / "checkpoints" / "best")
    assert all(torch.equal(a, b) for a, b in zip(old.parameters(), model.parameters()))


def test_a_run_written_before_run_json_samples_evaluates_and_resumes(tmp_path, capsys):
    run = copy_run(LEGACY, tmp_path / "old")
    status, out, err = cli(capsys, "sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png"))
    assert status == 0, err
    assert (tmp_path / "s.png").stat().st_size > 0
    status, out, err = cli(capsys, "eval", str(run), "--json", str(tmp_path / "e.json"))
    assert status == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["checkpoint"] == "step-0000004"
    assert 0 < result["nll_nats"] < 64 * 0.7 and "nan" not in out  # 64 binary pixels

    assert checkpoint_problem(run / "checkpoints" / "step-0000004") is None
    genlab.train("", "", run, steps=6, resume=True, quiet=True)
    meta = json.loads((run / "run.json").read_text())  # the resumed run writes schema 1
    assert meta["schema"] == 1 and meta["config"]["train"]["steps"] == 6
    assert linked(run, "latest") == "step-0000006"
    assert (run / "checkpoints" / "step-0000006" / "checkpoint.json").exists()
    assert [r["step"] for r in read_journal(run / "metrics.jsonl")][-1] == 6
    assert genlab.load(run, which="latest").checkpoint == "step-0000006"


# self-describing checkpoint folders ------------------------------------------------------
def test_checkpoint_json_describes_the_folder_with_a_hash_of_each_file(run8):
    folder = run8 / "checkpoints" / "step-0000006"
    meta = json.loads((folder / "checkpoint.json").read_text())
    run_meta = json.loads((run8 / "run.json").read_text())
    assert meta["schema"] == 1 and meta["step"] == 6
    for key in ("family", "config", "data", "data_fingerprint", "parameters"):
        assert meta[key] == run_meta[key]
    files = sorted(p.name for p in folder.iterdir() if p.name != "checkpoint.json")
    assert sorted(meta["files"]) == files == ["model.safetensors", "optimizer.pt", "trainer.json"]
    for name, digest in meta["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


def test_a_checkpoint_folder_alone_loads_and_samples_even_when_moved(tmp_path, tiny_text, capsys):
    run = train(tmp_path / "rnn", 4, "train.eval_every=4", family="rnn", data=tiny_text)
    moved = tmp_path / "elsewhere" / "kept"
    shutil.copytree(run / "checkpoints" / "step-0000004", moved)
    shutil.rmtree(run)  # no run directory: the folder must carry config, data and tokenizer
    assert (moved / "tokenizer.json").exists()
    model = genlab.load(moved)
    assert model.checkpoint == "kept"
    status, out, err = cli(capsys, "sample", str(moved), "--max-new-tokens", "20", "--seed", "1")
    assert status == 0, err
    assert len(out) > 0


def test_load_of_a_checkpoint_folder_path_picks_that_checkpoint(run8):
    folder = run8 / "checkpoints" / "step-0000006"
    model = genlab.load(folder)
    assert model.checkpoint == "step-0000006"
    raw = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in raw.items())
    assert genlab.load(run8 / "checkpoints" / "latest").checkpoint == "step-0000008"
    with pytest.raises(UsageError, match="is one checkpoint"):
        genlab.load(folder, which="latest")


# damaged files -----------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["eval", "sample"])
def test_a_damaged_model_file_stops_eval_and_sample_with_one_line_naming_it(
    verb, vae_run, tmp_path
):
    run = copy_run(vae_run, tmp_path / "run")
    weights = run / "checkpoints" / "step-0000004" / "model.safetensors"
    damage(weights)  # issue 10: eval printed nan, sample wrote noise, both with exit 0
    extra = ["--json", str(tmp_path / "e.json")] if verb == "eval" else ["--out", "s.png"]
    r = run_cli(verb, str(run), *extra, cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    line = one_line(r.stderr, verb)
    assert f"checkpoint file {weights} is damaged" in line
    assert "sha256" in line and "use another checkpoint (--which step-0000002)" in line
    assert "nan" not in r.stdout and not (tmp_path / "s.png").exists()
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("how", ["truncated", "deleted", "manifest"])
def test_truncated_missing_or_unlisted_files_are_one_line_errors(how, run8, tmp_path):
    run = copy_run(run8, tmp_path / "run")
    folder = run / "checkpoints" / "step-0000008"
    if how == "truncated":
        os.truncate(folder / "model.safetensors", 1000)
        match = "model.safetensors is damaged .*does not match its sha256"
    elif how == "deleted":
        (folder / "model.safetensors").unlink()
        match = "checkpoint file missing: .*model.safetensors"
    else:
        meta = json.loads((folder / "checkpoint.json").read_text())
        del meta["files"]["model.safetensors"]
        (folder / "checkpoint.json").write_text(json.dumps(meta))
        match = "is not recorded in checkpoint.json"
    with pytest.raises(RunError, match=match) as err:
        genlab.load(run)
    assert "\n" not in str(err.value)
    assert genlab.load(run, which="step-6").checkpoint == "step-0000006"  # the advice works


# keep_last and --which ---------------------------------------------------------------------
def test_keep_last_keeps_the_newest_checkpoints_besides_the_best(tmp_path, monkeypatch):
    from genlab.training.loop import Trainer

    losses = iter([1.0, 0.5, 0.9, 0.8, 0.7, 0.6, 0.55, 0.52])  # best at step 2
    monkeypatch.setattr(Trainer, "evaluate", lambda self: {"loss": next(losses)})
    run = train(tmp_path / "run", 8, "train.eval_every=1", "train.checkpoint_every=1")
    assert linked(run, "best") == "step-0000002"
    assert linked(run, "latest") == "step-0000008"
    assert folders(run) == ["step-0000002", "step-0000006", "step-0000007", "step-0000008"]


def test_keep_last_1_keeps_latest_and_best_only(run8, tmp_path):
    run = train(tmp_path / "run", 6, "train.checkpoint_every=1", "train.keep_last=1")
    assert folders(run) == ["step-0000006"]
    with pytest.raises(UsageError, match="train.keep_last must be at least 1"):
        train(tmp_path / "bad", 6, "train.keep_last=0")


def test_which_takes_best_latest_and_step_n(run8, capsys, tmp_path):
    assert folders(run8) == ["step-0000004", "step-0000006", "step-0000008"]
    assert genlab.load(run8, which="step-4").checkpoint == "step-0000004"
    assert genlab.load(run8, which="step-0000006").checkpoint == "step-0000006"
    assert genlab.load(run8, which="latest").checkpoint == "step-0000008"
    status, out, err = cli(
        capsys, "eval", str(run8), "--which", "step-4", "--json", str(tmp_path / "e.json")
    )
    assert status == 0, err
    assert "checkpoint: step-0000004" in out


@pytest.mark.parametrize("which", ["step-2", "newest", "step-x"])
def test_a_bad_which_is_a_usage_error_listing_the_available_checkpoints(which, run8, capsys):
    status, _, err = cli(capsys, "sample", str(run8), "--which", which)
    assert status == 2
    line = one_line(err, "sample")
    assert "step-0000004, step-0000006, step-0000008" in line
    assert "latest (= step-0000008)" in line


# resume past damage ------------------------------------------------------------------------
RESUME = ("train.checkpoint_every=2", "train.eval_every=100", "train.schedule=constant")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("full") / "run", 10, *RESUME)


@pytest.mark.parametrize(
    ("how", "note"),
    [
        ("damaged", "checkpoint step-0000006 is damaged (model.safetensors does not match"),
        ("truncated", "checkpoint step-0000006 is damaged (optimizer.pt does not match"),
        ("no-link", "checkpoints/latest is missing; resuming from step-0000006"),
        ("half-written", "checkpoint step-0000006 is damaged (trainer.json is missing)"),
    ],
)
def test_resume_falls_back_to_the_newest_intact_checkpoint_saying_so(
    how, note, uninterrupted, tmp_path, capsys
):
    run = train(tmp_path / "run", 6, *RESUME)
    latest = run / "checkpoints" / "step-0000006"
    if how == "damaged":
        damage(latest / "model.safetensors")
    elif how == "truncated":
        os.truncate(latest / "optimizer.pt", 100)
    elif how == "no-link":  # killed after the folder's rename, before the link's
        (run / "checkpoints" / "latest").unlink()
    else:
        (latest / "trainer.json").unlink()
    status, _, err = resume(capsys, run, 10)
    assert status == 0, err
    lines = [line for line in err.splitlines() if line.startswith("genlab: ")]
    assert len(lines) == 1 and note in lines[0], err
    if how != "no-link":
        assert "resuming from step-0000004, the newest intact checkpoint" in lines[0]
    assert linked(run, "latest") == "step-0000010"
    assert checkpoint_problem(run / "checkpoints" / "step-0000006") is None  # written anew
    end = run / "checkpoints" / "latest"
    assert same_weights(end, uninterrupted / "checkpoints" / "latest")
    steps = [r["step"] for r in read_journal(run / "metrics.jsonl") if r["split"] == "train"]
    assert steps == list(range(1, 11))


def test_resume_with_no_intact_checkpoint_is_a_one_line_error(tmp_path, capsys):
    run = train(tmp_path / "run", 4, "train.checkpoint_every=2", "train.eval_every=100")
    for name in folders(run):
        damage(run / "checkpoints" / name / "model.safetensors")
    with pytest.raises(RunError, match="no intact checkpoint") as err:
        resume_checkpoint(run)
    assert "\n" not in str(err.value)


def test_resume_tolerates_a_torn_last_metrics_line(uninterrupted, tmp_path):
    run = train(tmp_path / "run", 6, *RESUME)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "split": "tra')  # a kill in the middle of an append
    train(run, 10, *RESUME, resume=True)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # the torn line is gone
    steps = [r["step"] for r in map(json.loads, lines) if r["split"] == "train"]
    assert steps == list(range(1, 11))
    assert same_weights(run / "checkpoints" / "latest", uninterrupted / "checkpoints" / "latest")


def test_a_damaged_metrics_line_before_the_last_names_its_line(tmp_path):
    run = train(tmp_path / "run", 4, *RESUME)
    text = (run / "metrics.jsonl").read_text().splitlines()
    text[1] = text[1][:10]
    (run / "metrics.jsonl").write_text("\n".join(text) + "\n")
    with pytest.raises(RunError, match=r"metrics.jsonl line 2 is damaged"):
        train(run, 6, *RESUME, resume=True)


# SIGKILL while writing checkpoints ---------------------------------------------------------
KILLED = [*tiny_overrides("vae"), "train.checkpoint_every=1", "train.eval_every=100000"]
KILLED += ["train.schedule=constant", "train.ema_decay=0", "train.log_every=1"]

# the child process that kills itself at a chosen point of writing checkpoint step-0000002
SELF_KILL = """
import os, signal, sys
import genlab, genlab.io.checkpoint as ckpt

point, run, settings = sys.argv[1], sys.argv[2], sys.argv[3:]
write, link = ckpt.write_bytes_atomic, ckpt._link

def write_then_die(path, content):
    if point == "mid-folder" and ".step-0000002." in str(path) and path.name == "optimizer.pt":
        write(path, content[: len(content) // 2])  # (a complete file of the wrong content)
        os.kill(os.getpid(), signal.SIGKILL)
    write(path, content)

def link_then_die(target, where):
    if point == "before-link" and target == "step-0000002":
        os.kill(os.getpid(), signal.SIGKILL)
    link(target, where)

ckpt.write_bytes_atomic, ckpt._link = write_then_die, link_then_die
genlab.train("vae", "digits", run, steps=100000, overrides=settings, quiet=True)
"""


@pytest.fixture(scope="module")
def never_killed(tmp_path_factory):
    """The run of `total` steps that no kill interrupted (one per total)."""
    runs: dict[int, Path] = {}

    def run(total: int) -> Path:
        if total not in runs:
            out = tmp_path_factory.mktemp("whole") / "run"
            runs[total] = genlab.train(
                "vae", "digits", out, steps=total, overrides=KILLED, quiet=True
            )
        return runs[total]

    return run


def killed_run(point: str, run: Path) -> None:
    """Train with a checkpoint after every step until a SIGKILL: `polled` from outside as soon
    as the first checkpoint exists; `mid-folder` (the second checkpoint's folder half written)
    and `before-link` (its folder in place, `latest` not yet moved) by the process itself."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if point == "polled":
        words = [f"--set={s}" for s in KILLED]
        argv = [*genlab_cmd(), "train", "vae", "--data", "digits", "--out", str(run)]
        argv += ["--steps", "100000", "--quiet", *words]
    else:
        argv = [sys.executable, "-c", SELF_KILL, point, str(run), *KILLED]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if point == "polled":
            deadline = time.monotonic() + 300
            while not (run / "checkpoints" / "latest").is_symlink():
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "no checkpoint within 300 s"
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err


@pytest.mark.parametrize("point", ["polled", "mid-folder", "before-link"])
def test_a_run_killed_with_sigkill_while_checkpointing_resumes_and_finishes(
    point, never_killed, tmp_path, capsys
):
    """SIGKILL while the run writes a checkpoint after every step, then --resume: the run
    finishes, loads and samples, and ends with the weights of a run never killed."""
    run = tmp_path / "run"
    killed_run(point, run)
    if point == "mid-folder":
        assert folders(run) == ["step-0000001"]
        assert [p.name[:14] for p in (run / "checkpoints").glob(".*")] == [".step-0000002."]
    if point == "before-link":
        assert folders(run) == ["step-0000001", "step-0000002"]
        assert linked(run, "latest") == "step-0000001"
    reached = max(int(name.split("-")[1]) for name in folders(run))
    total = reached + 4

    status, _, err = resume(capsys, run, total, "vae")
    assert status == 0, err
    assert linked(run, "latest") == f"step-{total:07d}"
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    steps = [r["step"] for r in read_journal(run / "metrics.jsonl") if r["split"] == "train"]
    assert steps == list(range(1, total + 1))
    model = genlab.load(run)
    assert model.checkpoint == f"step-{total:07d}"
    status, out, err = cli(capsys, "sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png"))
    assert status == 0, err
    assert (tmp_path / "s.png").stat().st_size > 0
    whole = never_killed(total)
    assert same_weights(run / "checkpoints" / "latest", whole / "checkpoints" / "latest")


def test_an_atomic_write_that_cannot_start_names_the_target_not_its_temporary_file(
    tmp_path, monkeypatch
):
    import tempfile

    from genlab.io.atomic import write_text_atomic

    def refuse(**kw):
        raise PermissionError(13, "Permission denied", str(Path(kw["dir"]) / ".x.json.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    target = tmp_path / "x.json"
    with pytest.raises(PermissionError) as e:
        write_text_atomic(target, "{}")
    assert e.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_files_get_the_usual_mode_under_the_process_umask(tmp_path):
    from genlab.io.atomic import umask, write_text_atomic

    old = os.umask(0o027)
    try:
        assert umask() == 0o027
        write_text_atomic(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
        assert os.umask(0o027) == 0o027  # reading the mask left it as it was
    finally:
        os.umask(old)
