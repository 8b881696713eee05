"""load_dataset: turn a built-in name or a path into a Dataset with train/val/test splits."""

from __future__ import annotations

import csv
import os
import zlib
from pathlib import Path

from genlab.data.builtin import BUILTINS, load_builtin
from genlab.data.core import Dataset, check_settings
from genlab.data.csv import is_csv, load_csv
from genlab.data.idx import IDX_NAME, find_idx_files, load_idx_dir
from genlab.data.images import IMAGE_SUFFIXES, has_images, load_image_folder
from genlab.data.text import is_text, load_text
from genlab.errors import DataError, UsageError

FORMATS = (
    "a built-in name ({builtins}), a folder of IDX files (MNIST format, plain or .gz), a folder "
    "of PNG/JPEG images (directly or in one sub-folder per class), a CSV file (.csv or .csv.gz), "
    "a UTF-8 text file (.txt, .text, .md) or a folder of .txt files"
)


def _formats() -> str:
    return FORMATS.format(builtins=", ".join(BUILTINS))


def load_dataset(
    spec: str | os.PathLike[str],
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    target: str = "",
    task: str = "auto",
    seed: int = 0,
    tokenizer: str = "char",
    vocab_size: int = 1024,
    context: int = 0,
    run_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a built-in data set or the data at a path, split deterministically by ``seed``.

    Text only: ``tokenizer`` (char or bpe) and ``vocab_size`` (bpe) shape a new tokenizer,
    ``context`` is the tokens a model reads per example, and ``run_dir`` names a run directory
    whose saved tokenizer is used instead. Raises UsageError for bad settings and DataError (one
    line) for missing or bad data.
    """
    check_settings(val_fraction, test_fraction, task, seed)
    settings = {
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "seed": int(seed),
        "task": task,
    }
    text = os.fspath(spec)
    if text in BUILTINS:
        if target:
            raise UsageError(
                f"data.target applies only to CSV files, not to the built-in '{text}'; remove it"
            )
        return load_builtin(text, **settings)
    if not text.strip():
        raise DataError(f"no data given; give {_formats()}")
    path = Path(text).expanduser()
    source = os.path.abspath(path)
    try:
        text_settings = {"tokenizer": tokenizer, "vocab_size": vocab_size, "context": context}
        return _load_path(path, source, target, settings, {**text_settings, "run_dir": run_dir})
    except (OSError, ValueError, EOFError, zlib.error, csv.Error, MemoryError) as exc:
        raise DataError(f"could not read data at '{source}': {type(exc).__name__}: {exc}") from exc


def _load_path(path: Path, source: str, target: str, settings: dict, text: dict) -> Dataset:
    if not path.exists():
        raise DataError(
            f"no data at '{path}': not a built-in ({', '.join(BUILTINS)}) and no such file or "
            "folder; give a path to IDX files, an image folder or a CSV file"
        )
    if path.is_dir():
        if find_idx_files(path):
            reader = load_idx_dir
        elif has_images(path):
            reader = load_image_folder
        elif is_text(path):
            return load_text(path, source, **settings, **text)
        else:
            raise DataError(
                f"found no data in the folder '{source}' (no IDX files, no PNG/JPEG images, "
                f"no .txt files, directly or in sub-folders); give {_formats()}"
            )
        if target:
            raise UsageError(
                f"data.target applies only to CSV files, not to the folder '{source}'; remove it"
            )
        return reader(path, source, **settings)
    if is_csv(path):
        return load_csv(path, source, target=target, **settings)
    if is_text(path):
        return load_text(path, source, **settings, **text)
    if IDX_NAME.match(path.name) or path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(
            f"'{source}' is a single file; give the folder that holds it ({path.parent}) instead"
        )
    hint = ""
    if path.suffix.lower() in (".data", ".tsv", ".dat"):
        hint = " (a comma-separated text file must be named .csv and start with a header line)"
    raise DataError(f"cannot read '{source}': unsupported file type{hint}; give {_formats()}")
