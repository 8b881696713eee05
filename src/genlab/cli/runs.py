"""What the sample and eval verbs need to know about a run before they load it."""

from __future__ import annotations

import json
from pathlib import Path

from genlab.errors import RunError, UsageError


def run_family(run_dir: str | Path) -> str:
    """The family of the run in `run_dir` (the "family" key of its config.json), so that the
    command line can offer that family's options before it loads anything."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"no run directory at {run_dir}; train one with 'genlab train'")
    path = run_dir / "config.json"
    if not path.exists():
        raise UsageError(
            f"{run_dir} is not a genlab run directory (it has no config.json); "
            "give a folder written by 'genlab train'"
        )
    try:
        family = json.loads(path.read_text(encoding="utf-8")).get("family")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        raise RunError(f"cannot read {path}: {e}; the run directory is damaged") from None
    if not isinstance(family, str) or not family:
        raise RunError(f"{path} names no model family; the run directory is damaged")
    return family
