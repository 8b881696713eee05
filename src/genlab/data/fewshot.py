"""Subsets of labelled data: some classes only (`data.classes`), or N labelled examples per
class (`data.labels_per_class`, few-shot learning), drawn with `data.seed`.

`classes` keeps the examples of the listed classes in every split (labels keep their ids: a
one-class anomaly detector trains on `data.classes=[3]`). `labels_per_class` keeps N examples
of each class in the train split and at most N of each in the validation split (so that early
stopping does not see more labels than training); the test split stays whole.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from genlab.data.core import Dataset, Split, fingerprint
from genlab.errors import DataError, UsageError


def check(labels_per_class: object, classes: object) -> None:
    """A UsageError for settings that cannot work."""
    if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, int):
        raise UsageError(f"data.labels_per_class must be a whole number; got {labels_per_class!r}")
    if labels_per_class < 0:
        raise UsageError(f"data.labels_per_class must be 0 (all) or more; got {labels_per_class}")
    if not isinstance(classes, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in classes
    ):
        raise UsageError(f"data.classes takes class ids like [0,3]; got {classes!r}")


def _per_class(y: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    """Sorted indices of at most n examples of each class of labels y, drawn with rng."""
    keep = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten().numpy()
        keep.append(rng.permutation(idx)[:n])
    return torch.as_tensor(np.sort(np.concatenate(keep)), dtype=torch.long)


def subset(dataset: Dataset, *, labels_per_class: int, classes: list[int], seed: int) -> Dataset:
    """The dataset cut as the module says; unchanged when both settings are off."""
    check(labels_per_class, classes)
    if not labels_per_class and not classes:
        return dataset
    info = dataset.info
    if info.task != "classification":
        raise DataError(
            f"data.labels_per_class and data.classes need class labels and '{info.source}' has "
            "none; use labelled data or remove them"
        )
    if classes and max(classes) >= info.num_classes:
        raise UsageError(
            f"data.classes: '{info.source}' has classes 0..{info.num_classes - 1}; got {classes}"
        )
    rng = np.random.default_rng(seed)
    splits: dict[str, Split] = {}
    for name, part in dataset.splits.items():
        idx = torch.arange(len(part))
        if classes and part.y is not None:
            idx = idx[torch.isin(part.y[idx], torch.tensor(classes, dtype=part.y.dtype))]
        if labels_per_class and name in ("train", "val") and part.y is not None and len(idx):
            idx = idx[_per_class(part.y[idx], labels_per_class, rng)]
        splits[name] = Split(part.x[idx], None if part.y is None else part.y[idx])
    if not len(splits["train"]):
        raise DataError(f"no training examples of classes {classes} in '{info.source}'")
    new_info = dataclasses.replace(
        info,
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fingerprint(splits),
        file_data=dict(info.file_data),
    )
    return dataclasses.replace(dataset, info=new_info, splits=splits)
