"""The contract of a data kind (image, text, audio, sequence, tabular).

A data kind is one module `genlab/data/<kind>.py` that defines one `DataKind` subclass and
registers it with one line in `genlab/data/kinds.py`. It owns everything that depends on what
the data *is*:

- `Config`: a dataclass of the settings that only apply to it (`--set data.<kind>.<key>=...`);
- `Record`: a dataclass, the kind's part of `DataInfo` (`info.record`), JSON-friendly;
- `claims(path)`: whether a path (file or folder) holds data of this kind;
- `read(path, source, split, cfg, ...)`: the reader, returning a `Dataset`;
- `encode(data, info)` / `decode(x, info)`: the reversible codec between the user's form
  (e.g. uint8 images, strings, waveforms in [-1, 1], note lists, table rows) and the tensors a
  model reads and samples;
- `write(samples, path, info)`: the writer of samples in the model's form (PNG grid, .txt,
  .wav, .mid, .csv, .npy), chosen by the output path's suffix.

Nothing outside the kind's module branches on the kind's name: `genlab sample` writes through
`kind_of(info).write`, the loader asks each kind whether it `claims` a path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from genlab.errors import UsageError


@dataclass(frozen=True)
class SplitSettings:
    """The settings every kind's reader honours (the common `data.*` keys)."""

    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    task: str = "auto"


@dataclass
class NoSettings:
    """A kind with no settings of its own."""


@dataclass
class Inputs:
    """Examples to predict on, as a data kind's `read_inputs` reads them."""

    names: list[str]
    """Per example: where it came from (a file name, `file:index` in an IDX file, a CSV row)."""
    x: torch.Tensor
    """The examples in the model's form, (N, ...)."""
    labels: list[str] | None = None
    """Per example: the label the input carries (class folder, IDX label, CSV target), when
    it carries one."""


class DataKind:
    """Base of the data kinds; subclasses set the class attributes and the methods below."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type] = NoSettings
    Record: ClassVar[type] = NoSettings
    suffixes: ClassVar[tuple[str, ...]] = (".npy",)
    """Output suffixes `write` accepts; the first is the default."""
    streams: ClassVar[bool] = False
    """Whether samples of this kind can be shown piece by piece as they are generated (text):
    `genlab sample` then streams them to stdout through a model's `stream`."""
    tokens: ClassVar[bool] = False
    """Whether its examples can be token ids below the record's `vocab_size` (as its settings
    choose): the sequence families (genlab.sequence) read kinds that say so."""
    WriteOptions: ClassVar[type] = NoSettings
    """Dataclass of the writer's options (e.g. audio's bits): `genlab sample` builds flags from
    it and passes those given to `write`."""
    builtins: ClassVar[dict[str, str]] = {}
    """Built-in data sets of this kind (name -> description) that `read_builtin` loads; they
    ship with genlab's dependencies (nothing is downloaded)."""
    default_samples: ClassVar[int] = 64
    """How many samples `genlab sample` draws when -n is not given."""
    preview: ClassVar[tuple[int, str] | None] = None
    """(n, suffix): the samples training writes through `write` into RUN_DIR/samples when it
    ends (None: none, or the run's own way)."""

    # reading -----------------------------------------------------------------------------------
    def claims(self, path: Path) -> bool:
        """Whether `path` (an existing file or folder) holds data of this kind."""
        return False

    def read(
        self,
        path: Path,
        source: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> Any:
        """Read and split the data at `path` into a `Dataset` (one-line DataError when bad).

        `context`: the length of one example a sequence model reads (0: the kind's default).
        `run_dir`: a run directory whose saved data files (e.g. a tokenizer) to reuse."""
        raise NotImplementedError

    def read_builtin(
        self,
        name: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> Any:
        """Load the built-in data set `name` (one of `builtins`) into a `Dataset`."""
        raise NotImplementedError

    def read_inputs(self, path: Path, info: Any) -> Inputs:
        """The examples at `path` (a file or folder of this kind, labelled or not) in the model's
        form for a run trained on data described by `info`, each with a name that finds it
        again (a file name, a row number): what `genlab predict` scores."""
        raise UsageError(
            f"genlab predict reads image and CSV data; a run trained on {self.name} data has "
            "nothing to predict from"
        )

    # codec -------------------------------------------------------------------------------------
    def encode(self, data: Any, info: Any) -> torch.Tensor:
        """The user's form -> the tensor form a model reads (a batch's "x")."""
        raise NotImplementedError

    def decode(self, x: Any, info: Any) -> Any:
        """A model's samples -> the user's form; `decode(encode(d)) == d` for data of the kind."""
        raise NotImplementedError

    def record_from_flat(self, flat: dict[str, Any], header: dict[str, Any]) -> Any:
        """The Record of a data description in genlab 0.x's flat form, where the kinds' fields
        (levels, vocab_size, feature_names, ...) sat beside the header keys. Default: the flat
        keys that name fields of `Record`; a kind whose Record differs overrides this."""
        names = {f.name for f in dataclasses.fields(self.Record)}
        return self.Record(**{k: v for k, v in flat.items() if k in names})

    # sampling and scoring of token kinds -------------------------------------------------------
    def start_tokens(self, info: Any) -> list[int]:
        """The token ids that sampling without a prompt conditions on ([]: the model's own)."""
        return []

    def prompt_tokens(self, path: Path, info: Any) -> list[int]:
        """The token ids of a prompt file (e.g. a MIDI opening) that samples continue."""
        raise UsageError(f"{self.name} data takes no prompt file")

    def scored_sequences(self, data: Any, split: str) -> tuple[str, list[Any]] | None:
        """For token data whose likelihood is reported per a unit of its own (music: per time
        step): the unit's name and, per whole sequence of the split, `(ids, counted, units)`:
        its (L,) token ids, an (L - 1,) bool array of the predicted tokens that count, and the
        number of units. None: the kind has no such unit."""
        return None

    def notes(self, info: Any) -> list[str]:
        """Lines a run summary shows about how the data was read and prepared (e.g. how a
        table's missing values were handled, or augmentation); none by default."""
        return []

    # writing -----------------------------------------------------------------------------------
    def default_suffix(self) -> str:
        return self.suffixes[0]

    def check_suffix(self, path: Path) -> None:
        """A UsageError unless `path`'s suffix is one this kind writes."""
        if path.suffix.lower() not in self.suffixes:
            raise UsageError(
                f"{self.name} samples are written as {', '.join(self.suffixes)}; "
                f"--out {path.name} has another suffix"
            )

    def write(self, samples: Any, path: Path, info: Any, **options: Any) -> list[Path]:
        """Write samples (the model's form) to `path`; returns the files written."""
        raise NotImplementedError

    def write_each(
        self, samples: Any, folder: Path, info: Any, *, stem: str = "sample", **options: Any
    ) -> list[Path]:
        """Write into `folder` the overview that `write` makes of all samples as STEM.EXT (an
        image grid, all texts in one file, one table) and one file per sample, STEM-000.EXT,
        STEM-001.EXT, ..., in the kind's default format; returns the files written. A kind
        whose `write` already writes a file per sample (audio, music) overrides this."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = self.default_suffix()
        written = self.write(samples, folder / f"{stem}{suffix}", info, **options)
        digits = max(3, len(str(len(samples) - 1)))
        for i in range(len(samples)):
            one = folder / f"{stem}-{i:0{digits}d}{suffix}"
            written += self.write(samples[i : i + 1], one, info)
        return written


def record_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """A Record dataclass from its JSON form; unknown keys are an error naming them."""
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(data) - names)
    if extra:
        raise UsageError(f"unknown data description keys {', '.join(extra)} for {cls.__name__}")
    return cls(**data)
