"""The frozen in-house feature extractor of sample-quality metrics.

Inception weights cannot be downloaded here, so Frechet distance and precision/recall use a
LeNet-style `cnn` classifier trained by genlab itself: deterministically (fixed recipe, fixed
seed, CPU) on the training split of the data being judged, then cached under a key made of the
recipe and the data's fingerprint, with a SHA-256 checksum of its weights that is verified on
every load. Its accuracy on the data's test split is kept in the cache entry and set on the
returned model as `test_accuracy`, so reports can say how good the judge is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from genlab.io.checkpoint import checkpoint_dir, load_tensors, write_json_atomic
from genlab.models.cnn import CNN

RECIPE = "lenet-v1"
"""Name of the training recipe below; change it whenever the recipe changes."""
RECIPE_OVERRIDES = [
    "train.batch_size=64",
    "train.lr=2e-3",
    "train.warmup_steps=50",
    "train.eval_every=250",
    "train.seed=0",
    "train.device=cpu",
]


def cache_root() -> Path:
    """Where extractors are cached: $GENLAB_CACHE or ~/.cache/genlab."""
    return Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab")) / "features"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def feature_extractor(
    data: str, *, steps: int = 2000, cache_dir: str | Path | None = None, progress: bool = False
) -> CNN:
    """A frozen `cnn` for `data` (built-in name or path), trained once and then read from cache.

    Its `features(x)` gives the vectors that Frechet distance and precision/recall compare,
    `predict(x)` class logits, and `test_accuracy` its accuracy on the data's test split.
    A cache entry whose checksum does not match is reported and trained again.
    """
    from genlab.run import build_model, load_data, read_run, train
    from genlab.runconfig import default_config

    dataset = load_data(default_config("cnn"), data)
    info = dataset.info
    key = hashlib.sha256(f"{RECIPE}:{steps}:{info.fingerprint}".encode()).hexdigest()[:20]
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    entry = root / key
    weights, meta_path = entry / "model.safetensors", entry / "meta.json"
    if weights.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") == _sha256(weights):
            family, cfg, saved_info = read_run(entry)
            model = _frozen(build_model(family, cfg.model, saved_info))
            model.load_state_dict(load_tensors(weights))
            if "test_accuracy" not in meta:  # an entry written before accuracies were kept
                meta["test_accuracy"] = classifier_accuracy(model, dataset)
                write_json_atomic(meta_path, meta)
            model.test_accuracy = meta["test_accuracy"]
            return model
        print(
            f"genlab: cached feature extractor {entry} fails its checksum; training it again",
            file=sys.stderr,
        )
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"genlab: training the frozen cnn feature extractor for {data} ({steps} steps, once; "
        f"cached in {root})",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(dir=root, prefix=".train-") as tmp, torch.enable_grad():
        run = train(  # (also when called under no_grad, e.g. from a training-health hook)
            "cnn",
            data,
            Path(tmp) / "run",
            overrides=RECIPE_OVERRIDES,
            steps=steps,
            quiet=not progress,
        )
        staged = Path(tmp) / "entry"
        staged.mkdir()
        shutil.copy(checkpoint_dir(run, "best") / "model.safetensors", staged / "model.safetensors")
        shutil.copy(run / "run.json", staged / "run.json")
        meta = {
            "recipe": RECIPE,
            "steps": steps,
            "data": info.source,
            "fingerprint": info.fingerprint,
            "sha256": _sha256(staged / "model.safetensors"),
        }
        model = _frozen(build_model("cnn", read_run(staged)[1].model, info))
        model.load_state_dict(load_tensors(staged / "model.safetensors"))
        meta["test_accuracy"] = classifier_accuracy(model, dataset)
        write_json_atomic(staged / "meta.json", meta)
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(staged, entry)
    return feature_extractor(data, steps=steps, cache_dir=root)


@torch.no_grad()
def classifier_accuracy(model: CNN, dataset, batch_size: int = 500) -> float:
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
