"""Layering: a family and the metrics import neither the run API nor the training loop (the
frozen judge of sample quality is trained by genlab.judges, the run layer)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

FORBIDDEN = ("genlab.run", "genlab.training", "genlab.judges", "genlab.bench", "genlab.cli")


def imported_by(*modules: str) -> set[str]:
    """The genlab modules a fresh interpreter holds after importing `modules`."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('genlab'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    return set(json.loads(out.stdout))


def reached(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(FORBIDDEN))


@pytest.mark.parametrize("family", ["genlab.models.gan", "genlab.registry"])
def test_families_import_no_run_api_and_no_trainer(family):
    loaded = imported_by(family)
    assert family in loaded
    assert reached(loaded) == []


def test_metrics_import_no_run_api_and_no_trainer():
    metrics = ["genlab.metrics.features", "genlab.metrics.quality", "genlab.metrics.evaluate"]
    loaded = imported_by(*metrics)
    assert set(metrics) <= loaded
    assert reached(loaded) == []


def test_the_run_layer_still_offers_train_and_load():
    import genlab

    assert callable(genlab.train) and callable(genlab.load)
    with pytest.raises(AttributeError):
        genlab.no_such_thing  # noqa: B018
