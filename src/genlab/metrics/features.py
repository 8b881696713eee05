"""The frozen in-house judge of sample-quality metrics: loading it, never training it.

Inception weights cannot be downloaded here, so Frechet distance and precision/recall use a
LeNet-style `cnn` classifier trained by genlab itself (genlab.judges, the run layer):
deterministically (fixed recipe, fixed seed, CPU) on the training split of the data being
judged, then cached under a key made of the recipe and the data's fingerprint, with a SHA-256
checksum of its weights that is verified on every load. Its accuracy on the data's test split is
kept in the cache entry and set on the loaded model as `test_accuracy`, so reports can say how
good the judge is.

A cache entry is a folder `<cache>/features/<key>/` holding `model.safetensors` and `meta.json`
(recipe, steps, data source and fingerprint, sha256, test_accuracy, and the cnn's model
settings).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from genlab.config import from_dict
from genlab.data import Dataset, load_dataset
from genlab.errors import DataError, UsageError
from genlab.io.checkpoint import load_tensors
from genlab.models.cnn import CNN

RECIPE = "lenet-v1"
"""Name of the judge's training recipe (genlab.judges); change it whenever the recipe changes."""


class JudgeNotCached(UsageError):
    """No usable cached judge: none was trained yet, or its entry fails its checksum."""

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


def cache_root() -> Path:
    """Where judges are cached: $GENLAB_CACHE/features or ~/.cache/genlab/features."""
    return Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab")) / "features"


def checksum(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def judge_data(data: str) -> Dataset:
    """The data a judge of `data` (built-in name or path) is trained, keyed and tested on: the
    data with the default split. Only labelled images can be judged."""
    dataset = load_dataset(data)
    info = dataset.info
    if info.kind != "image" or info.task != "classification":
        raise DataError(
            f"sample-quality metrics judge labelled image data with a classifier; '{data}' is "
            f"{info.kind} data{'' if info.task == 'classification' else ' without labels'}"
        )
    return dataset


def judge_entry(fingerprint: str, steps: int, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of the judge trained `steps` steps on data with this fingerprint."""
    key = hashlib.sha256(f"{RECIPE}:{steps}:{fingerprint}".encode()).hexdigest()[:20]
    return (Path(cache_dir) if cache_dir is not None else cache_root()) / key


def load_judge(
    data: str | Dataset, *, steps: int = 2000, cache_dir: str | Path | None = None
) -> CNN:
    """The cached frozen `cnn` judge of `data` (a built-in name or path, or the Dataset that
    `judge_data` gives), in eval mode with gradients off.

    Its `features(x)` gives the vectors that Frechet distance and precision/recall compare,
    `predict(x)` class logits, and `test_accuracy` its accuracy on the data's test split.
    Raises JudgeNotCached when no entry exists or it fails its checksum; genlab.judges.judge
    (which `genlab eval` and `genlab bench` call) trains and caches one."""
    dataset = judge_data(data) if isinstance(data, str) else data
    info = dataset.info
    entry = judge_entry(info.fingerprint, steps, cache_dir)
    weights, meta_path = entry / "model.safetensors", entry / "meta.json"
    how = (
        f"train it once with 'genlab eval RUN_DIR --samples N --feature-steps {steps}' or, in "
        f"Python, genlab.judges.judge('{info.source}', steps={steps})"
    )
    if not (weights.exists() and meta_path.exists()):
        raise JudgeNotCached(
            f"no frozen judge (cnn {RECIPE}, {steps} steps) of '{info.source}' is cached in "
            f"{entry.parent}; {how}"
        )
    try:
        meta = json.loads(meta_path.read_text())
        settings = _model_settings(entry, meta)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise JudgeNotCached(
            f"the cached judge {entry} has an unreadable meta.json (a damaged file); {how}",
            damaged=True,
        ) from None
    if meta.get("sha256") != checksum(weights):
        raise JudgeNotCached(
            f"the cached judge {entry} fails its checksum (a damaged file); {how}", damaged=True
        )
    model = _frozen(CNN(from_dict(CNN.Config, settings), info))
    model.load_state_dict(load_tensors(weights))
    accuracy = meta.get("test_accuracy")
    model.test_accuracy = (
        classifier_accuracy(model, dataset) if accuracy is None else float(accuracy)
    )
    return model


def _model_settings(entry: Path, meta: dict) -> dict:
    """The cnn's model settings of a cache entry (entries written before they were kept in
    meta.json have the training run's config.json beside them)."""
    if "model" in meta:
        return meta["model"]
    return json.loads((entry / "config.json").read_text())["config"]["model"]


@torch.no_grad()
def classifier_accuracy(model: CNN, dataset: Dataset, batch_size: int = 500) -> float:
    """The classifier's accuracy on the test split of `dataset`."""
    split = dataset.splits["test"]
    right = 0
    for start in range(0, len(split), batch_size):
        batch = dataset.batch("test", torch.arange(start, min(start + batch_size, len(split))))
        right += int((model.predict(batch["x"]).argmax(-1) == batch["y"]).sum())
    return right / max(len(split), 1)


def _frozen(model: CNN) -> CNN:
    """The model in eval mode with gradients switched off."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
