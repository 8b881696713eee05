"""Sample-quality figures of audio models, in the eyes of a frozen `melcnn` judge.

The judge (genlab.models.melcnn) is trained once per data set by genlab.judges.audio_judge
(deterministically: fixed recipe, seed and CPU) and cached like the image judge: a folder
`<cache>/features/<key>/` with `model.safetensors` and `meta.json` (recipe, steps, data source
and fingerprint, sha256, test accuracy, model settings), the key made of the recipe, the steps
and the data's fingerprint (which covers its rate, clip length and split). This module only
loads it.

- `judge_accuracy`: the share of clips the judge assigns to the class they were asked for: for
  class-conditional samples, the share that "sound like" the digit asked for.
- `audio_quality`: that accuracy for n samples of every class, the Frechet distance between
  judge features of the samples and of training clips, and both figures for real held-out clips
  (the real-vs-real baseline).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from genlab.config import from_dict
from genlab.data import Dataset
from genlab.errors import DataError
from genlab.io.checkpoint import load_tensors
from genlab.metrics.features import JudgeNotCached, cache_root, checksum
from genlab.metrics.quality import frechet_distance
from genlab.models.melcnn import MelCNN

AUDIO_RECIPE = "melcnn-v1"
"""Name of the audio judge's training recipe (genlab.judges); change it with the recipe."""


def check_judge_data(dataset: Dataset) -> None:
    """A DataError unless `dataset` is labelled audio."""
    info = dataset.info
    if info.kind != "audio" or info.task != "classification":
        raise DataError(
            f"the audio judge is a classifier of labelled audio; '{info.source}' is {info.kind} "
            f"data{'' if info.task == 'classification' else ' without labels'}"
        )


def audio_judge_entry(fingerprint: str, steps: int, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of the audio judge trained `steps` steps on data with this fingerprint."""
    key = hashlib.sha256(f"{AUDIO_RECIPE}:{steps}:{fingerprint}".encode()).hexdigest()[:20]
    return (Path(cache_dir) if cache_dir is not None else cache_root()) / key


def load_audio_judge(
    dataset: Dataset, *, steps: int, cache_dir: str | Path | None = None
) -> MelCNN:
    """The cached frozen judge of `dataset` (eval mode, gradients off, `test_accuracy` set);
    JudgeNotCached when there is none or it fails its checksum."""
    check_judge_data(dataset)
    entry = audio_judge_entry(dataset.info.fingerprint, steps, cache_dir)
    weights, meta_path = entry / "model.safetensors", entry / "meta.json"
    how = "genlab.judges.audio_judge trains it"
    if not (weights.exists() and meta_path.exists()):
        raise JudgeNotCached(f"no audio judge ({AUDIO_RECIPE}, {steps} steps) is cached; {how}")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = from_dict(MelCNN.Config, meta["model"])
    except (OSError, ValueError, KeyError, TypeError):
        raise JudgeNotCached(f"the audio judge {entry} is damaged; {how}", damaged=True) from None
    if meta.get("sha256") != checksum(weights):
        raise JudgeNotCached(f"the audio judge {entry} fails its checksum; {how}", damaged=True)
    model = MelCNN(cfg, dataset.info)
    model.load_state_dict(load_tensors(weights))
    for p in model.parameters():
        p.requires_grad_(False)
    model.test_accuracy = float(meta["test_accuracy"])
    return model.eval()


@torch.no_grad()
def judge_outputs(judge: MelCNN, clips: torch.Tensor, batch_size: int = 100):
    """(features (N, D), predicted classes (N,)) of clips (N, T) in either audio form."""
    feats, preds = [], []
    for i in range(0, len(clips), batch_size):
        f = judge.features(clips[i : i + batch_size].to(judge.window.device))
        feats.append(f.cpu())
        preds.append(judge.head(f).argmax(-1).cpu())
    return torch.cat(feats), torch.cat(preds)


def judge_accuracy(judge: MelCNN, clips: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of clips (N, T) the judge assigns to their class in `labels` (N,)."""
    return float((judge_outputs(judge, clips)[1] == labels.cpu()).float().mean())


@torch.no_grad()
def class_samples(
    model: Any,
    classes: int,
    per_class: int,
    *,
    seed: int = 0,
    batch_size: int = 16,
    options: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(clips (classes x per_class, T) on the CPU, the class asked for each) from a
    class-conditional model, drawn class by class from one seeded generator."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    clips, asked = [], []
    for c in range(classes):
        for i in range(0, per_class, batch_size):
            m = min(batch_size, per_class - i)
            clips.append(model.sample(m, generator=g, class_label=c, **(options or {})).cpu())
            asked.append(torch.full((m,), c))
    return torch.cat(clips), torch.cat(asked)


@torch.no_grad()
def audio_quality(
    model: Any,
    data: Dataset,
    judge: MelCNN,
    *,
    per_class: int = 10,
    seed: int = 0,
    split: str = "test",
    batch_size: int = 16,
    options: dict[str, Any] | None = None,
    clips: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Judge accuracy and Frechet distance of `per_class` samples of every class of a
    class-conditional audio model (or of given `clips`: (samples, classes asked for)), each
    next to the same figure for real `split` clips."""
    check_judge_data(data)
    k = data.info.num_classes
    if clips is None:
        clips = class_samples(
            model, k, per_class, seed=seed, batch_size=batch_size, options=options
        )
    fake, asked = clips
    fake_f, fake_c = judge_outputs(judge, fake)
    part = data.splits[split]
    real = data.batch(split, torch.arange(len(part)))
    real_f, real_c = judge_outputs(judge, real["x"])
    n_train = len(data.splits["train"])
    pick = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[:1000]
    ref_f, _ = judge_outputs(judge, data.batch("train", pick)["x"])
    return {
        "judge_accuracy": float((fake_c == asked).float().mean()),
        "judge_accuracy_real": float((real_c == real["y"]).float().mean()),
        "fd": frechet_distance(ref_f, fake_f),
        "fd_real": frechet_distance(ref_f, real_f),
        "samples": len(fake),
        "judge_test_accuracy": judge.test_accuracy,
    }
