"""Training the frozen judge of sample-quality metrics (the run layer: it trains a `cnn` with the
training loop). genlab.metrics only loads judges (genlab.metrics.features); `genlab eval`,
`genlab bench` and genlab.run.train (for a family whose `health` needs one) call `judge` here,
which trains and caches one the first time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from genlab.config import apply_overrides, to_dict
from genlab.data import Dataset
from genlab.io.atomic import write_json_atomic
from genlab.io.checkpoint import checkpoint_dir, load_tensors
from genlab.metrics.features import (
    RECIPE,
    JudgeNotCached,
    checksum,
    classifier_accuracy,
    judge_data,
    judge_entry,
    load_judge,
)
from genlab.models.cnn import CNN
from genlab.models.melcnn import MelCNN
from genlab.runconfig import default_config
from genlab.training.loop import Trainer

RECIPE_OVERRIDES = [
    "train.batch_size=64",
    "train.lr=2e-3",
    "train.warmup_steps=50",
    "train.eval_every=250",
    "train.seed=0",
    "train.device=cpu",
]
"""The judge's training recipe (named RECIPE in genlab.metrics.features) on top of cnn's
defaults."""


def judge(
    data: str, *, steps: int = 2000, cache_dir: str | Path | None = None, progress: bool = False
) -> CNN:
    """The frozen `cnn` judge of `data` (built-in name or path): read from the cache, or trained
    once (deterministically: fixed recipe, seed and CPU), cached with a checksum and returned.
    A cache entry that fails its checksum is reported and trained again."""
    dataset = judge_data(data)
    entry = judge_entry(dataset.info.fingerprint, steps, cache_dir)

    def train() -> None:
        cfg = apply_overrides(default_config("cnn"), RECIPE_OVERRIDES)
        _train_and_cache(CNN, cfg, dataset, steps, entry, RECIPE, progress)

    return _cached_or_trained(
        lambda: load_judge(dataset, steps=steps, cache_dir=cache_dir),
        train,
        entry,
        f"the frozen cnn judge of {data} ({steps} steps",
    )


AUDIO_RECIPE_OVERRIDES = [
    "train.batch_size=32",
    "train.lr=2e-3",
    "train.warmup_steps=50",
    "train.eval_every=250",
    "train.seed=0",
    "train.device=cpu",
]
"""The audio judge's training recipe (named AUDIO_RECIPE in genlab.metrics.audio) on top of
melcnn's defaults."""


def audio_judge(
    dataset: Dataset,
    *,
    steps: int = 1500,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> MelCNN:
    """The frozen `melcnn` judge of labelled audio `dataset` (as the run reads it: same rate,
    clip length and split): read from the cache, or trained once deterministically on its
    training split, tested on its test split, cached with a checksum and returned."""
    from genlab.metrics.audio import (
        AUDIO_RECIPE,
        audio_judge_entry,
        check_judge_data,
        load_audio_judge,
    )

    check_judge_data(dataset)
    entry = audio_judge_entry(dataset.info.fingerprint, steps, cache_dir)

    def train() -> None:
        cfg = apply_overrides(default_config("melcnn"), AUDIO_RECIPE_OVERRIDES)
        _train_and_cache(MelCNN, cfg, dataset, steps, entry, AUDIO_RECIPE, progress, batch_size=100)

    return _cached_or_trained(
        lambda: load_audio_judge(dataset, steps=steps, cache_dir=cache_dir),
        train,
        entry,
        f"the frozen melcnn judge of {dataset.info.source} ({steps} steps",
    )


def _cached_or_trained(load: Any, train: Any, entry: Path, what: str) -> Any:
    """`load()` the cached judge; when there is none (or it is damaged: said on stderr), say
    that `what` is being trained, `train()` it into `entry` and load it."""
    try:
        return load()
    except JudgeNotCached as e:
        if e.damaged:
            print(f"genlab: {e.args[0].split(';')[0]}; training it again", file=sys.stderr)
    entry.parent.mkdir(parents=True, exist_ok=True)
    print(f"genlab: training {what}, once; cached in {entry.parent})", file=sys.stderr)
    train()
    return load()


def _train_and_cache(
    cls: type,
    cfg: Any,
    dataset: Dataset,
    steps: int,
    entry: Path,
    recipe: str,
    progress: bool,
    batch_size: int = 500,
) -> None:
    """Train a judge of class `cls` (config `cfg`) on `dataset` for `steps` steps,
    deterministically, and write it into the cache folder `entry` with its meta.json (recipe,
    data, sha256, test accuracy with batches of `batch_size`), replacing it atomically."""
    root = entry.parent
    with tempfile.TemporaryDirectory(dir=root, prefix=".train-") as tmp, torch.enable_grad():
        # (also when called under no_grad), in this process alone, also under torchrun
        torch.manual_seed(cfg.train.seed)
        model = cls(cfg.model, dataset.info)
        (Path(tmp) / "run").mkdir()
        trainer = Trainer(
            model, dataset, cfg.train, Path(tmp) / "run", total_steps=steps,
            quiet=not progress, distributed=False,
        )  # fmt: skip
        trainer.fit()
        staged = Path(tmp) / "entry"
        staged.mkdir()
        weights = staged / "model.safetensors"
        shutil.copy(checkpoint_dir(Path(tmp) / "run", "best") / "model.safetensors", weights)
        model.load_state_dict(load_tensors(weights))
        meta = {
            "recipe": recipe,
            "steps": steps,
            "data": dataset.info.source,
            "fingerprint": dataset.info.fingerprint,
            "sha256": checksum(weights),
            "test_accuracy": classifier_accuracy(model.eval(), dataset, batch_size=batch_size),
            "model": to_dict(cfg.model),
        }
        write_json_atomic(staged / "meta.json", meta)
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(staged, entry)
