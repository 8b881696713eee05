"""The data kinds by name, and `kind_of(info)`: the kind whose writer `genlab sample` uses.

STAND-IN: this minimal module only carries the writers of the two kinds the command line
samples today (image: PNG grid or .npy; text: .txt), in the shape of the `DataKind` contract
(`genlab/data/kind.py`), so that the CLI writes through `kind_of(info).write` and never
branches on a family or kind name. The data-kind branch replaces this file with the full
registry (readers, codecs, audio, sequence and tabular kinds) when the branches merge.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.data.kind import DataKind
from genlab.errors import UsageError
from genlab.io.atomic import write_bytes_atomic, write_text_atomic

TEXT_SEPARATOR = "\n" + "-" * 40 + "\n"
"""Between two texts, on the terminal and in a .txt file of several samples."""


class ImageKind(DataKind):
    """Images (N, C, H, W) in [0, 1]: a PNG grid, or the raw float array as .npy."""

    name = "image"
    description = "images: PNG grid or .npy array (N, C, H, W) in [0, 1]"
    suffixes = (".png", ".npy")

    def write(
        self, samples: Any, path: Path, info: Any, *, nrow: int | None = None, **options: Any
    ) -> list[Path]:
        """`samples` (N, C, H, W) in [0, 1] as a grid of `nrow` images a row, or a .npy array."""
        from genlab.io.images import save_grid

        self.check_suffix(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        images = torch.as_tensor(samples).detach().cpu()
        if path.suffix.lower() == ".npy":
            buffer = io.BytesIO()
            np.save(buffer, images.numpy())
            write_bytes_atomic(path, buffer.getvalue())
        else:
            save_grid(images, path, nrow=nrow)
        return [path]


class TextKind(DataKind):
    """Texts (a list of strings): one .txt file, texts separated by a dashed line."""

    name = "text"
    description = "text: a UTF-8 .txt file"
    suffixes = (".txt",)

    def write(self, samples: Any, path: Path, info: Any, **options: Any) -> list[Path]:
        self.check_suffix(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, TEXT_SEPARATOR.join(samples) + "\n")
        return [path]


KINDS: dict[str, DataKind] = {"image": ImageKind(), "text": TextKind()}


def kind_of(info: Any) -> DataKind:
    """The data kind of a data description (`DataInfo.kind`), or a UsageError."""
    try:
        return KINDS[info.kind]
    except KeyError:
        raise UsageError(
            f"genlab cannot write samples of {info.kind} data yet; kinds: {', '.join(KINDS)}"
        ) from None
