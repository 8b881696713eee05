"""Shared fixtures: tiny seeded configurations that run in seconds on 2 CPU cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _registry() -> dict:
    from genlab.registry import FAMILIES

    return {name: cls for name, (cls, _) in FAMILIES.items()}


# each family declares the smallest configuration that still learns (`tiny`) and the data it
# learns in the contract tests (`tiny_data`: a built-in name, or "text" for the `tiny_text`
# corpus), so a new family needs no edit here
TINY = {name: list(cls.tiny) for name, cls in _registry().items()}
FIXTURES = {"text": "tiny_text", "audio": "tiny_audio"}
"""`tiny_data` names that stand for a data fixture below rather than a built-in."""
TINY_DATA = {
    name: FIXTURES.get(cls.tiny_data, cls.tiny_data)
    for name, cls in _registry().items()
    if cls.tiny_data != "digits"
}
"""family -> the data fixture it learns (families absent here learn the built-in digits)."""
TINY_TRAIN = [
    "train.batch_size=32",
    "train.log_every=1",
    "train.eval_every=3",
    "train.checkpoint_every=2",
    "train.eval_batches=2",
]


def tiny_data_spec(family: str, request: pytest.FixtureRequest) -> str:
    """What `family` learns in the tests: digits, another built-in (e.g. the 'wine' table), or
    the path the data fixture TINY_DATA names writes."""
    from genlab.data import BUILTINS

    name = TINY_DATA.get(family)
    if name in BUILTINS:
        return name
    return str(request.getfixturevalue(name)) if name else "digits"


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


def write_tiny_audio(root: Path) -> Path:
    """200 mono 8 kHz clips of 256 samples named `{digit}_{speaker}_{index}.wav` in `root` for
    the audio families: digit 0 a 500 Hz sine, digit 1 a 1500 Hz one; speaker a loud, b soft;
    random phases (seeded)."""
    import numpy as np
    from scipy.io import wavfile

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(256) / 8000
    for i in range(50):
        for digit, freq in (("0", 500.0), ("1", 1500.0)):
            for speaker, amp in (("a", 0.6), ("b", 0.3)):
                wave = amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
                data = np.round(wave * 32767).astype(np.int16)
                wavfile.write(root / f"{digit}_{speaker}_{i}.wav", 8000, data)
    return root


@pytest.fixture(scope="session")
def tiny_audio(tmp_path_factory) -> Path:
    """The small WAV clips of `write_tiny_audio`, once per session."""
    return write_tiny_audio(tmp_path_factory.mktemp("audio") / "clips")
