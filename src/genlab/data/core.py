"""Data containers shared by every reader, plus splitting and fingerprinting helpers."""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from genlab.errors import DataError, UsageError

SPLITS = ("train", "val", "test")
TASKS = ("auto", "classification", "regression")


@dataclass
class DataInfo:
    """Everything a model or a report needs to know about a loaded data set (JSON-friendly)."""

    source: str
    kind: str
    shape: list[int]
    levels: int
    num_classes: int
    task: str
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    feature_mean: list[float] = field(default_factory=list)
    feature_std: list[float] = field(default_factory=list)
    target_name: str = ""
    target_mean: float = 0.0
    target_std: float = 1.0
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    fingerprint: str = ""
    vocab_size: int = 0
    """Text: number of token ids."""
    tokenizer: str = ""
    """Text: the tokenizer's kind (char or bpe)."""
    files: list[str] = field(default_factory=list)
    """Files the run directory keeps to read this data again (e.g. tokenizer.json)."""


@dataclass
class Split:
    """One split: ``x`` as stored (uint8 images or standardized float32 rows), ``y`` or None."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Dataset:
    """A loaded data set: its description and its train/val/test splits."""

    info: DataInfo
    splits: dict[str, Split]
    files: dict[str, bytes] = field(default_factory=dict)
    """Name -> content of the files a run directory must keep for this data (info.files)."""

    def batch(self, split: str, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"x": float32, "y": ...}`` for the examples at ``index`` of ``split``.

        Images come back as float32 in [0, 1] (stored value / (levels - 1)), shape (B, C, H, W);
        tabular rows as float32 (B, D). "y" is present only when the data has labels.
        """
        if split not in self.splits:
            raise UsageError(f"unknown split '{split}'; use one of: {', '.join(self.splits)}")
        part = self.splits[split]
        index = torch.as_tensor(index, dtype=torch.long).cpu()
        x = part.x[index]
        if self.info.kind == "image":
            x = x.to(torch.float32).div_(max(self.info.levels - 1, 1))
        else:
            x = x.to(torch.float32)
        out = {"x": x}
        if part.y is not None:
            out["y"] = part.y[index]
        return out


def check_settings(val_fraction: object, test_fraction: object, task: object, seed: object) -> None:
    """Raise UsageError for split fractions, task or seed that cannot work."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value))
        ):
            raise UsageError(f"data.{name} must be a number between 0 and 1, got {value!r}")
        if float(value) < 0 or float(value) >= 1:
            raise UsageError(f"data.{name} must be at least 0 and below 1, got {value}")
    if float(val_fraction) + float(test_fraction) >= 1:  # type: ignore[arg-type]
        raise UsageError(
            f"data.val_fraction + data.test_fraction must be below 1 (got {val_fraction} + "
            f"{test_fraction}); lower them so some data is left for training"
        )
    if task not in TASKS:
        raise UsageError(f"unknown data.task {task!r}; use one of: {', '.join(TASKS)}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise UsageError(f"data.seed must be a non-negative integer, got {seed!r}")


def _count(fraction: float, n: int) -> int:
    """Examples a fraction of n asks for: 0 for a zero fraction, else at least 1."""
    if fraction <= 0:
        return 0
    return max(1, round(fraction * n))


def _too_few(what: str, n: int, n_val: int, n_test: int) -> DataError:
    return DataError(
        f"{what} holds only {n} examples, too few for {n_val} validation + {n_test} test "
        "examples and at least 1 for training; add more data or lower data.val_fraction / "
        "data.test_fraction"
    )


def split_indices(
    n: int, *, val_fraction: float, test_fraction: float, seed: int, what: str
) -> dict[str, np.ndarray]:
    """Shuffle range(n) with numpy Generator(seed) and cut test, val and train index arrays."""
    n_test = _count(test_fraction, n)
    n_val = _count(val_fraction, n)
    if n - n_val - n_test < 1:
        raise _too_few(what, n, n_val, n_test)
    perm = np.random.default_rng(seed).permutation(n)
    return {
        "train": perm[n_test + n_val :],
        "val": perm[n_test : n_test + n_val],
        "test": perm[:n_test],
    }


def carve_val(n: int, *, val_fraction: float, seed: int, what: str) -> dict[str, np.ndarray]:
    """Split range(n) (a source's own training set) into train and val index arrays."""
    n_val = _count(val_fraction, n)
    if n - n_val < 1:
        raise _too_few(what, n, n_val, 0)
    perm = np.random.default_rng(seed).permutation(n)
    return {"train": perm[n_val:], "val": perm[:n_val]}


def fingerprint(splits: dict[str, Split]) -> str:
    """sha256 hex over the stored bytes of x then y (when present) of train, val and test."""
    digest = hashlib.sha256()
    for name in SPLITS:
        part = splits[name]
        for tensor in (part.x, part.y):
            if tensor is not None:
                digest.update(np.ascontiguousarray(tensor.numpy()).data)
    return digest.hexdigest()


def image_dataset(
    source: str,
    *,
    x: np.ndarray,
    y: np.ndarray | None,
    test_x: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    levels: int,
    class_names: list[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    task: str = "auto",
) -> Dataset:
    """Build an image Dataset from uint8 arrays (N, C, H, W) and optional int labels.

    With ``test_x`` the source has its own test set: it becomes the test split and val is carved
    from ``x``. Otherwise all examples are shuffled and cut into train/val/test.
    """
    if y is None and task == "classification":
        raise DataError(
            f"{source} has no labels, so data.task=classification cannot work; put the images "
            "in one sub-folder per class (or add a labels file), or use data.task=auto"
        )
    if task == "regression":
        raise DataError(
            f"{source} is image data with class labels, not numeric targets; data.task="
            "regression works only with CSV files; use data.task=auto or classification"
        )
    arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    if test_x is not None:
        parts = carve_val(len(x), val_fraction=val_fraction, seed=seed, what=source)
        for name in ("train", "val"):
            idx = parts[name]
            arrays[name] = (x[idx], None if y is None else y[idx])
        arrays["test"] = (np.array(test_x), None if test_y is None else np.array(test_y))
    else:
        parts = split_indices(
            len(x), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, what=source
        )
        for name in SPLITS:
            idx = parts[name]
            arrays[name] = (x[idx], None if y is None else y[idx])
    splits = {
        name: Split(
            x=torch.from_numpy(np.ascontiguousarray(ax, dtype=np.uint8)),
            y=None if ay is None else torch.from_numpy(np.ascontiguousarray(ay, dtype=np.int64)),
        )
        for name, (ax, ay) in arrays.items()
    }
    labelled = y is not None
    info = DataInfo(
        source=source,
        kind="image",
        shape=[int(d) for d in x.shape[1:]],
        levels=int(levels),
        num_classes=len(class_names) if labelled else 0,
        task="classification" if labelled else "none",
        class_names=list(class_names) if labelled else [],
        target_name="label" if labelled else "",
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fingerprint(splits),
    )
    return Dataset(info=info, splits=splits)
