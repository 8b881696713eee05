"""What the sample and eval verbs need to know about a run before they load it."""

from __future__ import annotations

from pathlib import Path

from genlab.errors import RunError
from genlab.io.manifest import read_manifest


def run_family(run_dir: str | Path) -> str:
    """The family of the run in `run_dir` (a run directory or one checkpoint folder), read from
    its manifest, so that the command line can offer that family's options before it loads
    anything."""
    meta = read_manifest(Path(run_dir))
    family = meta.get("family")
    if not isinstance(family, str) or not family:
        raise RunError(f"{run_dir} names no model family in its manifest; the run is damaged")
    return family
