"""load_dataset: turn a built-in name or a path into a Dataset with train/val/test splits.

Every kind's built-in names first; then each data kind of `genlab.data.kinds.KINDS`, in
order, is asked whether it claims the path, and the first that does reads it. Nothing here
depends on which kinds exist.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import zlib
from pathlib import Path
from typing import Any

from genlab.data import fewshot
from genlab.data.config import DataConfig
from genlab.data.core import Dataset, check_settings
from genlab.data.kind import DataKind
from genlab.data.kinds import BUILTINS, KINDS
from genlab.errors import DataError, UsageError


def _formats() -> str:
    kinds = ", ".join(kind.description for kind in KINDS.values() if kind.description)
    return f"a built-in name ({', '.join(BUILTINS)}), {kinds}"


def load_dataset(
    spec: str | os.PathLike[str],
    data_cfg: Any = None,
    *,
    context: int = 0,
    run_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a built-in data set or the data at a path, split as `data_cfg` (a DataConfig;
    default: the defaults) says, deterministically by its seed.

    ``context``: the length of one example a sequence model reads (0: the kind's default).
    ``run_dir``: a run directory whose saved data files (e.g. a tokenizer) are used instead of
    new ones. Raises UsageError for bad settings and DataError (one line) for missing or bad
    data.
    """
    cfg = DataConfig() if data_cfg is None else data_cfg
    check_settings(cfg.val_fraction, cfg.test_fraction, cfg.task, cfg.seed)
    fewshot.check(cfg.labels_per_class, cfg.classes)
    dataset = _load(cfg, spec, context=context, run_dir=run_dir)
    return fewshot.subset(
        dataset, labels_per_class=cfg.labels_per_class, classes=cfg.classes, seed=cfg.seed
    )


def _load(
    cfg: Any,
    spec: str | os.PathLike[str],
    *,
    context: int,
    run_dir: str | os.PathLike[str] | None,
) -> Dataset:
    split = cfg.split()
    text = os.fspath(spec)
    for kind in KINDS.values():
        if text in kind.builtins:
            _check_unused(cfg, kind.name, f"the built-in '{text}'")
            return kind.read_builtin(
                text, split, _settings(cfg, kind), context=context, run_dir=_path(run_dir)
            )
    if not text.strip():
        raise DataError(f"no data given; give {_formats()}")
    path = Path(text).expanduser()
    source = os.path.abspath(path)
    try:
        kind = _claiming_kind(path, source)
        _check_unused(cfg, kind.name, f"'{source}'")
        return kind.read(
            path,
            source,
            split,
            _settings(cfg, kind),
            context=context,
            run_dir=_path(run_dir),
        )
    except (OSError, ValueError, EOFError, zlib.error, csv.Error, MemoryError) as exc:
        raise DataError(f"could not read data at '{source}': {type(exc).__name__}: {exc}") from exc


def kind_name(spec: str | os.PathLike[str]) -> str | None:
    """The data kind of a built-in name or an existing path, without reading it (None when no
    kind claims it: `load_dataset` then says why)."""
    text = os.fspath(spec)
    for kind in KINDS.values():
        if text in kind.builtins:
            return kind.name
    path = Path(text).expanduser()
    if not text.strip() or not path.exists():
        return None
    return next((kind.name for kind in KINDS.values() if kind.claims(path)), None)


def _settings(cfg: Any, kind: DataKind) -> Any:
    """The kind's own settings group of a DataConfig (its defaults when it has none)."""
    return getattr(cfg, kind.name, None) or kind.Config()


def _path(run_dir: str | os.PathLike[str] | None) -> Path | None:
    return None if run_dir is None else Path(run_dir)


def _claiming_kind(path: Path, source: str) -> DataKind:
    if not path.exists():
        raise DataError(
            f"no data at '{path}': not a built-in ({', '.join(BUILTINS)}) and no such file or "
            f"folder; give {_formats()}"
        )
    for kind in KINDS.values():
        if kind.claims(path):
            return kind
    if path.is_dir():
        raise DataError(
            f"found no data in the folder '{source}', directly or in sub-folders; give {_formats()}"
        )
    raise DataError(f"cannot read '{source}': unsupported file type; give {_formats()}")


def _check_unused(cfg: Any, kind: str, what: str) -> None:
    """A UsageError when a setting of another kind than the data's is not at its default."""
    for name in KINDS:
        group = getattr(cfg, name, None)
        if name == kind or group is None:
            continue
        default = type(group)()
        for f in dataclasses.fields(group):
            if getattr(group, f.name) != getattr(default, f.name):
                raise UsageError(
                    f"data.{name}.{f.name} applies only to {name} data, not to {what} "
                    f"({kind} data); remove it"
                )
