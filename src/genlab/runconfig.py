"""The run configuration of a family: its model Config with the data and train groups."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import field
from typing import Any

from genlab.config import apply_overrides
from genlab.data.config import DataConfig
from genlab.errors import UsageError
from genlab.registry import get_family
from genlab.training.config import TrainConfig

__all__ = ["DataConfig", "TrainConfig", "default_config", "run_config_class"]


@functools.cache  # one class per family, so that configs of the same family compare equal
def run_config_class(family: str) -> type:
    """The run configuration dataclass of a family: model (its Config), data and train groups."""
    model_cls, _ = get_family(family)
    return dataclasses.make_dataclass(
        f"{model_cls.__name__}RunConfig",
        [
            ("model", model_cls.Config, field(default_factory=model_cls.Config)),
            ("data", DataConfig, field(default_factory=DataConfig)),
            ("train", TrainConfig, field(default_factory=TrainConfig)),
        ],
    )


def default_config(family: str, preset: str | None = None) -> Any:
    """A family's run configuration: the defaults, shaped by a preset function when named."""
    model_cls, presets = get_family(family)
    run = run_config_class(family)()
    if model_cls.defaults:
        run = apply_overrides(run, list(model_cls.defaults))
    if preset:
        if preset not in presets:
            names = ", ".join(presets) or "none"
            raise UsageError(f"unknown preset '{preset}' for {family}; presets: {names}")
        run = presets[preset](run)
    return run
