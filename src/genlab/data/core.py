"""Data containers shared by every reader, plus splitting and fingerprinting helpers."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from genlab.data.kind import record_from_dict
from genlab.errors import DataError, UsageError

SPLITS = ("train", "val", "test")
TASKS = ("auto", "classification", "regression")


@dataclass
class DataInfo:
    """Everything a model or a report needs to know about a loaded data set (JSON-friendly).

    A common header (the fields below) plus `record`, the data kind's own part (the kind's
    `Record` dataclass: image levels, the text tokenizer, the tabular columns...)."""

    source: str
    kind: str
    shape: list[int]
    """The shape of one example as a model reads it."""
    num_classes: int = 0
    task: str = "none"
    """classification, regression, or none (unlabelled)."""
    class_names: list[str] = field(default_factory=list)
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    fingerprint: str = ""
    files: list[str] = field(default_factory=list)
    """Files the run directory keeps to read this data again (e.g. tokenizer.json)."""
    record: Any = None
    """The kind's part of the description: an instance of `kind_of(kind).Record`."""
    file_data: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    """The contents of `files` once loaded (from the data or the run directory); not saved."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the header keys plus "record": {...}."""
        out = {k: copy.deepcopy(getattr(self, k)) for k in HEADER}
        out["record"] = {} if self.record is None else dataclasses.asdict(self.record)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        """Read the JSON form of `to_dict`, or the flat form of genlab 0.x run directories
        (levels, vocab_size, tokenizer, feature_* and target_* beside the header keys)."""
        from genlab.data.kinds import kind_of

        if not isinstance(data, dict) or "kind" not in data:
            raise UsageError("the data description must be a JSON object with a 'kind' key")
        kind = kind_of(data["kind"])
        header = {k: data[k] for k in HEADER if k in data}
        rest = {k: v for k, v in data.items() if k not in HEADER}
        if "record" in rest:
            record = rest.pop("record")
            if rest:
                raise UsageError(f"unknown data description keys {', '.join(sorted(rest))}")
            return cls(**header, record=record_from_dict(kind.Record, record))
        unknown = sorted(set(rest) - set(FLAT_KEYS))
        if unknown:
            raise UsageError(f"unknown data description keys {', '.join(unknown)}")
        return cls(**header, record=kind.record_from_flat(rest, header))


HEADER = tuple(
    f.name for f in dataclasses.fields(DataInfo) if f.name not in ("record", "file_data")
)
FLAT_KEYS = (
    "levels",
    "vocab_size",
    "tokenizer",
    "feature_names",
    "feature_mean",
    "feature_std",
    "target_name",
    "target_mean",
    "target_std",
)
"""The kind-specific keys that genlab 0.x kept at the top level of the data description."""


@dataclass
class Split:
    """One split: ``x`` as stored (e.g. uint8 images, standardized float32 rows), ``y`` or None."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    ids: list[str] | None = field(default=None, compare=False)
    """Where each example came from (a file name, a CSV line number), when the reader knows."""

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Dataset:
    """A loaded data set: its description and its train/val/test splits.

    A kind whose stored form is not the model's form subclasses it and overrides
    `model_input` (e.g. images: uint8 -> float in [0, 1] by the image codec)."""

    info: DataInfo
    splits: dict[str, Split]
    files: dict[str, bytes] = field(default_factory=dict)
    """Name -> content of the files a run directory must keep for this data (info.files)."""

    def __post_init__(self) -> None:
        self.info.file_data.update(self.files)

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """Stored examples -> the tensor a model reads (default: the stored values as float32)."""
        return x.to(torch.float32)

    def batch(self, split: str, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"x": ..., "y": ...}`` for the examples at ``index`` of ``split``.

        "x" is what `model_input` makes of the stored examples; "y" is present only when the
        data has labels.
        """
        if split not in self.splits:
            raise UsageError(f"unknown split '{split}'; use one of: {', '.join(self.splits)}")
        part = self.splits[split]
        index = torch.as_tensor(index, dtype=torch.long).cpu()
        out = {"x": self.model_input(part.x[index])}
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
