"""Reading run directories for people: find the runs under a folder, summarize one, describe one
in full (config, checkpoints with their verified state, evaluations).

Everything here only reads: no model is built and nothing is written. A run that cannot be read
whole still gets a summary (with its problem) so that one damaged run does not hide the others.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, UsageError
from genlab.io.journal import read_journal
from genlab.io.manifest import (
    LEGACY_MANIFEST,
    MANIFEST,
    manifest_file,
    read_json_file,
    read_manifest,
)

SKIP = ("checkpoints", "samples", ".git", "__pycache__")
"""Folders never searched for runs (a run's own parts, and tool folders)."""


def is_run_dir(path: Path) -> bool:
    """Whether `path` is a run directory (it has run.json, or genlab 0.1.0's config.json)."""
    return (path / MANIFEST).is_file() or (
        (path / LEGACY_MANIFEST).is_file() and (path / "checkpoints").is_dir()
    )


def find_runs(root: str | Path) -> list[Path]:
    """The run directories at or below `root` (e.g. runs/vae, and a bench's runs/bench/runs/gan),
    in path order. A run's own folders are not searched further."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"no folder at {root}; give the folder that holds your runs")
    found = []
    for here, dirs, _ in os.walk(root):
        path = Path(here)
        if is_run_dir(path):
            found.append(path)
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
    return sorted(found)


@dataclass
class RunSummary:
    """One line of `genlab runs`."""

    path: Path
    family: str = "?"
    data: str = "?"
    step: int = 0
    """The step of the latest checkpoint (0: none yet)."""
    total_steps: int | None = None
    """The steps the run was configured for (None when unknown)."""
    metric: str = ""
    """The family's selection figure, e.g. loss; "" when the run has not been evaluated."""
    mode: str = "min"
    """min, max, or last (the latest checkpoint counts as best)."""
    best: float | None = None
    best_step: int | None = None
    wall_s: float | None = None
    """Training seconds (summed over resumed parts); None for a run that did not record them."""
    modified: float = 0.0
    """When the run last changed (seconds since the epoch)."""
    problem: str = ""
    """Why the run could not be read whole ("" when it could)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "family": self.family,
            "data": self.data,
            "step": self.step,
            "total_steps": self.total_steps,
            "metric": self.metric,
            "mode": self.mode,
            "best": self.best,
            "best_step": self.best_step,
            "wall_s": self.wall_s,
            "modified": self.modified,
            "problem": self.problem,
        }


def data_name(source: str) -> str:
    """A short name of a data source: a built-in name as it is, a path by its last part."""
    if "/" not in source and os.sep not in source:
        return source
    return Path(source).name or source


def total_steps(manifest: dict[str, Any]) -> int | None:
    """The step count a run was configured for: train.steps, or the one its epochs give."""
    train = manifest.get("config", {}).get("train", {})
    epochs, batch = train.get("epochs", 0) or 0, train.get("batch_size")
    n_train = manifest.get("data", {}).get("n_train")
    if epochs > 0 and batch and n_train:
        return math.ceil(epochs * (n_train // batch))
    steps = train.get("steps")
    return steps if isinstance(steps, int) else None


def trainer_state(run: Path) -> dict[str, Any] | None:
    """The trainer state (trainer.json) of the run's latest checkpoint, or None."""
    latest = run / "checkpoints" / "latest"
    if not latest.is_dir():
        return None
    state = read_json_file(latest / "trainer.json", "trainer state")
    return state if isinstance(state, dict) else None


def wall_seconds(run: Path) -> float | None:
    """The run's training seconds: the last `elapsed_s` of its metrics.jsonl."""
    times = [r["elapsed_s"] for r in read_journal(run / "metrics.jsonl") if "elapsed_s" in r]
    return float(times[-1]) if times else None


def _modified(run: Path) -> float:
    times = [p.stat().st_mtime for p in (run / "metrics.jsonl", run / MANIFEST) if p.exists()]
    return max(times, default=run.stat().st_mtime)


def summarize(run: str | Path) -> RunSummary:
    """The summary of one run directory; a damaged part is noted in `problem`, not raised."""
    run = Path(run)
    s = RunSummary(path=run, modified=_modified(run))
    try:
        meta = read_manifest(run)
        s.family = str(meta.get("family", "?"))
        s.data = data_name(str(meta.get("data", {}).get("source", "?")))
        s.total_steps = total_steps(meta)
        state = trainer_state(run)
        if state is not None:
            s.step = int(state.get("step", 0))
            s.metric = str(state.get("best_key", "loss"))
            s.mode = str(state.get("best_mode", "min"))
            last, best = state.get("last_val"), state.get("best_val")
            if s.mode == "last":
                s.best, s.best_step = last, s.step if last is not None else None
            elif state.get("best_step", -1) >= 0 and best is not None:
                s.best, s.best_step = float(best), int(state["best_step"])
        s.wall_s = wall_seconds(run)
    except (GenlabError, OSError, ValueError, TypeError, AttributeError) as e:
        s.problem = str(e) or type(e).__name__
    return s


SORTS = ("time", "name", "metric")


def sort_runs(runs: list[RunSummary], by: str) -> list[RunSummary]:
    """`time`: newest first; `name`: by path; `metric`: by selection figure, best first (runs
    with another figure grouped apart, runs without one last)."""
    if by == "time":
        return sorted(runs, key=lambda r: -r.modified)
    if by == "name":
        return sorted(runs, key=lambda r: str(r.path))
    if by == "metric":

        def key(r: RunSummary) -> tuple:
            if r.best is None or not math.isfinite(r.best):
                return (1, "", 0.0)
            return (0, r.metric, -r.best if r.mode == "max" else r.best)

        return sorted(runs, key=key)
    raise UsageError(f"--sort takes {', '.join(SORTS)}; got {by!r}")


# one run in full -----------------------------------------------------------------------------
@dataclass
class CheckpointInfo:
    name: str
    step: int
    links: list[str] = field(default_factory=list)
    """best and/or latest when they point here."""
    bytes: int = 0
    status: str = "ok"
    """ok (every file matches its recorded sha256), unverified (a checkpoint written before
    checkpoint.json, read whole without a problem), or what is wrong."""


def checkpoints(run: Path) -> list[CheckpointInfo]:
    """The kept checkpoints of a run, oldest first, each checked against its recorded hashes."""
    from genlab.io.checkpoint import (
        checkpoint_dir,
        checkpoint_problem,
        checkpoint_step,
        list_checkpoints,
        recorded_hashes,
    )

    links = {}
    for link in ("best", "latest"):
        target = checkpoint_dir(run, link)
        if target is not None:
            links.setdefault(target.name, []).append(link)
    out = []
    for folder in list_checkpoints(run):
        problem = checkpoint_problem(folder)
        try:
            verified = recorded_hashes(folder) is not None
        except GenlabError:
            verified = False
        status = f"damaged: {problem}" if problem else "ok" if verified else "unverified"
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        step = checkpoint_step(folder)
        out.append(CheckpointInfo(folder.name, step, links.get(folder.name, []), size, status))
    return out


def evaluations(run: Path) -> dict[str, dict[str, Any]]:
    """The results `genlab eval` wrote into the run directory (eval-*.json), by file name;
    per-example lists (anomaly scores) are replaced by their length."""
    out = {}
    for path in sorted(run.glob("eval*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            out[path.name] = {"problem": f"unreadable ({e})"}
            continue
        if isinstance(result, dict):
            out[path.name] = {
                k: (f"{len(v)} values" if isinstance(v, list) and len(v) > 20 else v)
                for k, v in result.items()
            }
    return out


def describe(run: str | Path) -> dict[str, Any]:
    """Everything `genlab info` shows about a run directory, as JSON-friendly data."""
    run = Path(run)
    if not run.is_dir() or not is_run_dir(run):
        read_manifest(run)  # the one-line error for a folder that is not a run
        raise UsageError(f"{run} is not a run directory; give a folder written by 'genlab train'")
    meta = read_manifest(run)
    summary = summarize(run)
    data = dict(meta.get("data", {}))
    data.pop("record", None)  # the kind's internals (columns, tokenizer): in run.json
    samples = sorted(p.name for p in (run / "samples").glob("*") if p.is_file())
    return {
        "run": str(run),
        "family": meta.get("family"),
        "genlab_version": meta.get("genlab_version"),
        "schema": 0 if manifest_file(run) == run / LEGACY_MANIFEST else meta.get("schema"),
        "parameters": meta.get("parameters"),
        "init_from": meta.get("init_from"),
        "data": data,
        "summary": summary.to_dict(),
        "config": meta.get("config", {}),
        "checkpoints": [vars(c) for c in checkpoints(run)],
        "evaluations": evaluations(run),
        "samples": samples,
    }


# curves --------------------------------------------------------------------------------------
NOT_FIGURES = ("step", "split", "elapsed_s")
"""Keys of metrics.jsonl records that are not figures to plot."""


def curves(run: str | Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The figures a run logged: name -> split (train, val) -> [(step, value)], in step order.

    Only numbers are kept (booleans such as early_stop are not figures)."""
    run = Path(run)
    if not (run / "metrics.jsonl").is_file():
        read_manifest(run)  # the one-line error for a folder that is not a run
        raise UsageError(f"{run} has no metrics.jsonl yet; train it first")
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for record in read_journal(run / "metrics.jsonl"):
        split, step = record.get("split"), record.get("step")
        if not isinstance(split, str) or not isinstance(step, int):
            continue
        for key, value in record.items():
            if key in NOT_FIGURES or isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                out.setdefault(key, {}).setdefault(split, []).append((step, float(value)))
    return out
