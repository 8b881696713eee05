"""Golden runs: every family's 20-step loss curve and seeded sample match tests/golden/golden.json.

A change that alters a golden figure must say why in its commit message (tests/golden/README.md).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("golden_record", GOLDEN_DIR / "record.py")
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)

GOLDEN = json.loads(record.GOLDEN.read_text())
HOW = (
    "see tests/golden/README.md: if the change is intended, re-record with "
    "'python tests/golden/record.py' and say why the figures changed in the commit message"
)


def close(actual: Any, expected: Any) -> bool:
    return actual == pytest.approx(expected, rel=1e-6, abs=1e-6)


def check(family: str, figure: str, actual: Any, expected: Any) -> list[str]:
    """Mismatches between one recomputed golden figure and its recorded value."""
    where = f"{family}: golden figure '{figure}'"
    if isinstance(expected, dict) and "shape" in expected:  # a tensor's summary
        if not isinstance(actual, dict) or actual.get("shape") != expected["shape"]:
            got = actual.get("shape") if isinstance(actual, dict) else type(actual).__name__
            return [f"{where}: shape {got} != recorded {expected['shape']}"]
        bad = [
            f"{where} {key}: {actual[key]!r} != recorded {expected[key]!r}"
            for key in ("sum", "abs_sum")
            if not close(actual[key], expected[key])
        ]
        return bad + check(family, f"{figure}.first", actual["first"], expected["first"])
    if isinstance(expected, dict):  # train curves, one per logged key
        bad = []
        if set(actual) != set(expected):
            bad.append(f"{where}: keys {sorted(actual)} != recorded {sorted(expected)}")
        for key in sorted(set(actual) & set(expected)):
            bad += check(family, f"{figure}.{key}", actual[key], expected[key])
        return bad
    if expected and all(isinstance(v, str) for v in expected):  # sampled texts
        return [] if actual == expected else [f"{where}: texts {actual!r} != {expected!r}"]
    if len(actual) != len(expected):
        return [f"{where}: {len(actual)} values != recorded {len(expected)}"]
    curve = figure.startswith("train.")  # a value per step (from 1), else per flat index
    return [
        f"{where} at {'step' if curve else 'index'} {i + curve}: {a!r} != recorded {e!r}"
        for i, (a, e) in enumerate(zip(actual, expected))
        if not close(a, e)
    ]


def registered() -> list[str]:
    from genlab.registry import FAMILIES

    return sorted(FAMILIES)


@pytest.mark.parametrize("family", registered())
def test_golden_run_is_unchanged(family):
    if family not in GOLDEN:  # a new family: guarded once it is recorded
        pytest.skip(f"{family} has no golden entry yet; record it with tests/golden/record.py")
    expected = GOLDEN[family]
    actual = record.figures(family)
    bad = []
    if set(actual) != set(expected):
        bad.append(f"{family}: figures {sorted(actual)} != recorded {sorted(expected)}")
    for figure in sorted(set(actual) & set(expected)):
        bad += check(family, figure, actual[figure], expected[figure])
    assert not bad, "\n".join([*bad[:20], HOW])


def test_no_golden_entry_outlives_its_family():
    stale = sorted(set(GOLDEN) - set(registered()))
    assert not stale, (
        f"tests/golden/golden.json has entries of unregistered families {stale}; run "
        "'python tests/golden/record.py' to record the registered ones (tests/golden/README.md)"
    )
