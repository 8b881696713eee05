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
    "ddpm": [
        "model.channels=8",
        "model.channel_mult=[1,2]",
        "model.attention=[1]",
        "model.head_channels=8",
        "model.norm_groups=4",
        "model.timesteps=100",
        "model.sample_steps=5",
        "model.nll_timesteps=4",
    ],
    "gan": ["model.channels=[8,16]", "model.latent_dim=8", "model.monitor_samples=0"],
    "pixelcnn": ["model.channels=8", "model.layers=3", "model.head=16"],
    "gpt": ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=16"],
    "rnn": ["model.hidden=32", "model.embed=16", "model.seq_len=16", "model.bptt=8"],
}
# the data each family learns in the contract tests: the built-in digits unless named here
# (a fixture name; text families read a small corpus written by `tiny_text`)
TINY_DATA = {"gpt": "tiny_text", "rnn": "tiny_text"}
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


FEATURE_STEPS = 30
"""Training steps of the frozen `cnn` feature extractor in tests (a weak but real judge)."""


@pytest.fixture(scope="session", autouse=True)
def feature_cache(tmp_path_factory) -> Path:
    """A session-wide $GENLAB_CACHE for every test (subprocesses inherit it), so tests never
    write to ~/.cache and train the feature extractor once."""
    path = tmp_path_factory.mktemp("genlab-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLAB_CACHE", str(path))
        yield path


def tiny_corpus(lines: int = 300, seed: int = 0) -> str:
    """A small seeded English-like corpus (about 12 KB) with structure a tiny model can learn."""
    import random

    rng = random.Random(seed)
    names = ["ROMEO", "JULIET", "NURSE", "MERCUTIO"]
    verbs = ["loves", "sees", "calls", "follows", "greets"]
    things = ["the moon", "the night", "a rose", "the garden", "her name"]
    out = []
    for _ in range(lines):
        out.append(f"{rng.choice(names)}: {rng.choice(names).title()} {rng.choice(verbs)} ")
        out[-1] += f"{rng.choice(things)}.\n"
    return "".join(out)


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> Path:
    """A small UTF-8 text file for the text families (gpt, rnn)."""
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text(tiny_corpus(), encoding="utf-8")
    return path
