"""The settings of data loading (the `data.` group of every run configuration).

`DataConfig` holds the keys every kind honours (splits, seed, task) and one group per
registered data kind with settings of its own (`data.<kind>.*`, the kind's `Config`), built
from `genlab.data.kinds.KINDS`: a new kind's settings appear with no edit here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from genlab.data.kind import SplitSettings
from genlab.data.kinds import KINDS


@dataclass
class CommonDataConfig:
    val_fraction: float = 0.1
    """Fraction of the training examples held out for validation (early stopping, best model)."""
    test_fraction: float = 0.1
    """Fraction held out for testing when the data has no test set of its own."""
    seed: int = 0
    """Seed of the train/validation/test split (kept apart from the training seed)."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """What the target is (CSV: auto guesses from its values; images: classification)."""
    labels_per_class: int = 0
    """Few-shot: keep this many labelled examples of each class for training (and at most this
    many for validation), drawn with data.seed; 0 keeps all (genlab.data.fewshot)."""
    classes: list[int] = field(default_factory=list)
    """Keep only the examples of these class ids in every split, e.g. [3] for a one-class
    anomaly detector; [] keeps all."""

    ALIASES: ClassVar[dict[str, str]] = {
        "target": "tabular.target",
        "tokenizer": "text.tokenizer",
        "vocab_size": "text.vocab_size",
    }
    """The flat keys of genlab 0.x, still read from the command line and saved configs."""

    def split(self) -> SplitSettings:
        """The common keys as the readers take them."""
        return SplitSettings(
            val_fraction=float(self.val_fraction),
            test_fraction=float(self.test_fraction),
            seed=int(self.seed),
            task=self.task,
        )


def _kind_groups() -> list[tuple[str, type, Any]]:
    return [
        (name, kind.Config, field(default_factory=kind.Config))
        for name, kind in KINDS.items()
        if dataclasses.fields(kind.Config)
    ]


DataConfig = dataclasses.make_dataclass(
    "DataConfig",
    _kind_groups(),
    bases=(CommonDataConfig,),
    namespace={"__doc__": "The data settings: the common keys plus data.<kind>.* per kind."},
)
DataConfig.__module__ = __name__
