"""Shared fixtures: tiny seeded configurations that run in seconds on 2 CPU cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# the smallest configuration of each family that still learns something on 8x8 digits
TINY = {
    "mlp": ["model.hidden=[32]"],
    "cnn": ["model.channels=[4,8]", "model.hidden=[16]"],
    "vae": ["model.channels=[8,16]", "model.hidden=32", "model.latent_dim=4"],
}
TINY_TRAIN = [
    "train.batch_size=32",
    "train.log_every=1",
    "train.eval_every=3",
    "train.checkpoint_every=2",
    "train.eval_batches=2",
]


def tiny_overrides(family: str, *extra: str) -> list[str]:
    return [*TINY[family], *TINY_TRAIN, *extra]


def genlab_cmd() -> list[str]:
    """The installed `genlab` console script next to this interpreter (or `python -m genlab`)."""
    script = Path(sys.executable).parent / "genlab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "genlab"]


def run_cli(*args: str, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [*genlab_cmd(), *args], capture_output=True, text=True, timeout=timeout, env=env, **kw
    )


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = SHARED_DATA / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {path} (only in the project's CI and dev machines)")
    return path
