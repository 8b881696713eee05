"""Experiment trackers for `genlab train --tracker mlflow|tensorboard` (the `tracking` extra).

A tracker receives what the training loop logs (its `log` hook: each record of metrics.jsonl),
the run's settings at the start and the run directory's files at the end. It never changes what
the run writes; the loop knows it only as a callable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.errors import UsageError

TRACKERS = ("mlflow", "tensorboard")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1} (lists and None as strings)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, int | float | str | bool) else str(v)
    return out


def numbers(record: dict[str, Any]) -> dict[str, float]:
    """The numeric figures of a log record (not its step, split or flags)."""
    return {
        k: float(v)
        for k, v in record.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    }


class Tracker:
    """Base: `start(params)`, `__call__(record)` for each log record, `finish(run_dir)`."""

    name = ""

    def start(self, params: dict[str, Any]) -> None: ...

    def __call__(self, record: dict[str, Any]) -> None: ...

    def finish(self, run_dir: Path) -> None: ...


class MLflowTracker(Tracker):
    """Logs to a local MLflow store: `where` (a tracking URI; default: the SQLite database
    mlflow.db in the run directory, artifacts in its mlartifacts/ folder); the experiment is
    named after the run directory."""

    name = "mlflow"

    def __init__(self, run_dir: Path, where: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UsageError(
                "--tracker mlflow needs MLflow: pip install 'genlab[tracking]'"
            ) from None
        run_dir = Path(run_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        self.uri = where or f"sqlite:///{run_dir / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)
        name = run_dir.name
        exp = self.client.get_experiment_by_name(name)
        exp_id = (
            exp.experiment_id
            if exp
            else self.client.create_experiment(
                name, artifact_location=(run_dir / "mlartifacts").as_uri()
            )
        )
        self.run_id = self.client.create_run(exp_id, run_name=name).info.run_id

    def start(self, params: dict[str, Any]) -> None:
        flat = flatten(params)
        items = sorted(flat.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a call
            from mlflow.entities import Param

            batch = [Param(k, str(v)[:500]) for k, v in items[i : i + 100]]
            self.client.log_batch(self.run_id, params=batch)

    def __call__(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step, split = int(record.get("step", 0)), record.get("split", "train")
        import time

        now = int(time.time() * 1000)
        metrics = [Metric(f"{split}/{k}", v, now, step) for k, v in numbers(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, run_dir: Path) -> None:
        run_dir = Path(run_dir)
        for name in ("run.json", "metrics.jsonl"):
            if (run_dir / name).exists():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        best = run_dir / "checkpoints" / "best"
        if best.exists():
            self.client.log_artifacts(self.run_id, str(best.resolve()), "checkpoint-best")
        self.client.set_terminated(self.run_id)


class TensorBoardTracker(Tracker):
    """Writes TensorBoard event files to `where` (default: the run's tensorboard/ folder)."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, where: str | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError(
                "--tracker tensorboard needs TensorBoard: pip install 'genlab[tracking]'"
            ) from None
        self.dir = Path(where) if where else Path(run_dir) / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.dir))

    def start(self, params: dict[str, Any]) -> None:
        lines = [f"| {k} | {v} |" for k, v in sorted(flatten(params).items())]
        self.writer.add_text("config", "| setting | value |\n|---|---|\n" + "\n".join(lines))

    def __call__(self, record: dict[str, Any]) -> None:
        step, split = int(record.get("step", 0)), record.get("split", "train")
        for k, v in numbers(record).items():
            self.writer.add_scalar(f"{split}/{k}", v, step)

    def finish(self, run_dir: Path) -> None:
        self.writer.flush()
        self.writer.close()


def make_tracker(name: str, run_dir: str | Path, where: str | None = None) -> Tracker:
    """The tracker called `name` for the run in `run_dir`."""
    if name == "mlflow":
        return MLflowTracker(Path(run_dir), where)
    if name == "tensorboard":
        return TensorBoardTracker(Path(run_dir), where)
    raise UsageError(f"unknown tracker '{name}'; use one of {', '.join(TRACKERS)}")
