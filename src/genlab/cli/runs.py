"""What the sample and eval verbs need to know about a run before they load it."""

from __future__ import annotations

from pathlib import Path

from genlab.errors import RunError, UsageError
from genlab.io.manifest import manifest_file, read_json_file, read_manifest


def run_family(run_dir: str | Path) -> str:
    """The family of the run in `run_dir` (a run directory or one checkpoint folder), read from
    its manifest, so that the command line can offer that family's options before it loads
    anything."""
    path = Path(run_dir)
    file = manifest_file(path) if path.is_dir() else None
    if file is None:
        read_manifest(path)  # the one-line error for a folder that is not a run
        raise UsageError(f"{path} is not a genlab run directory")
    meta = read_json_file(file, "run manifest")
    family = meta.get("family") if isinstance(meta, dict) else None
    if family is None:  # a checkpoint folder described by its run directory
        family = read_manifest(path).get("family")
    if not isinstance(family, str) or not family:
        raise RunError(f"{run_dir} names no model family in its manifest; the run is damaged")
    return family
