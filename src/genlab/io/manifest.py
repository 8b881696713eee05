"""The run manifest: what a run directory (run.json) or a checkpoint folder (checkpoint.json)
holds, and the schema versions of both.

A manifest is a JSON object::

    schema            run-format version (SCHEMA); absent in the config.json of genlab 0.1.0 (= 0)
    genlab_version    the genlab that wrote it
    family            the model family
    config            the full run configuration (model, data and train groups)
    data              the data description (the run's DataInfo as a dict)
    data_fingerprint  the data's fingerprint (also inside `data`), compared on --resume
    data_files        files beside the weights that the data needs (e.g. tokenizer.json)
    parameters        the model's parameter count
    init_from         the run it was fine-tuned from, or null
    choices           settings chosen from the data ("auto" values resolved), one line each
                      for the run summary (optional; absent: none)

A checkpoint's checkpoint.json adds `step` and `files` (the sha256 of each file in the folder).
Reading a manifest checks its schema: a newer one than this genlab knows is an error saying to
upgrade; an older one is migrated in memory (the file is left as it is).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genlab._version import __version__
from genlab.errors import RunError, UsageError
from genlab.io.atomic import write_json_atomic

SCHEMA = 1
"""The run-format version this genlab writes and the newest it reads."""
MANIFEST = "run.json"
"""The manifest of a run directory."""
LEGACY_MANIFEST = "config.json"
"""The manifest of a run written before the format had a schema (schema 0, genlab 0.1.0)."""
CHECKPOINT_MANIFEST = "checkpoint.json"
"""The manifest of one checkpoint folder: the run's manifest plus its step and file hashes."""

_REQUIRED = ("family", "config", "data")


def new_manifest(
    *,
    family: str,
    config: dict[str, Any],
    data: dict[str, Any],
    data_files: list[str],
    parameters: int,
    init_from: str | None = None,
    choices: list[str] | None = None,
) -> dict[str, Any]:
    """The manifest of a run this genlab writes (current schema)."""
    return {
        "schema": SCHEMA,
        "genlab_version": __version__,
        "family": family,
        "config": config,
        "data": data,
        "data_fingerprint": data.get("fingerprint", ""),
        "data_files": sorted(data_files),
        "parameters": parameters,
        "init_from": init_from,
        "choices": list(choices or []),
    }


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` as the run directory's run.json, atomically; returns its path."""
    path = Path(run_dir) / MANIFEST
    write_json_atomic(path, manifest)
    return path


def manifest_file(path: str | Path) -> Path | None:
    """The file that describes `path` (a run directory or a checkpoint folder), or None.

    A run directory: run.json, else the legacy config.json. A checkpoint folder: its
    checkpoint.json, else (a checkpoint written before checkpoint.json) its run's manifest.
    """
    path = Path(path)
    for name in (MANIFEST, LEGACY_MANIFEST, CHECKPOINT_MANIFEST):
        if (path / name).is_file():
            return path / name
    if (path / "model.safetensors").is_file() and path.parent.name == "checkpoints":
        return manifest_file(path.parent.parent)
    return None


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a run directory or checkpoint folder, migrated to the current schema."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"no run directory at {path}; train one with 'genlab train'")
    file = manifest_file(path)
    if file is None:
        raise UsageError(
            f"{path} is not a genlab run directory or checkpoint folder (it has no {MANIFEST}); "
            "give a folder written by 'genlab train'"
        )
    meta = read_json_file(file, "run manifest")
    if file.name == CHECKPOINT_MANIFEST and isinstance(meta, dict) and "family" not in meta:
        # saved by a loop that ran outside a described run: its run directory describes it
        run_file = manifest_file(path.parent.parent) if path.parent.name == "checkpoints" else None
        if run_file is not None and run_file.name != CHECKPOINT_MANIFEST:
            return {**migrate(read_json_file(run_file, "run manifest"), run_file), **meta}
    return migrate(meta, file)


def read_json_file(path: str | Path, what: str) -> Any:
    """A JSON file's content; a missing or damaged file is a one-line error."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{what} at {path} is unreadable ({e}); it may be damaged") from None


def migrate(meta: Any, source: str | Path) -> dict[str, Any]:
    """`meta` (read from `source`) in the current schema; refuses a schema newer than SCHEMA."""
    if not isinstance(meta, dict):
        raise RunError(f"{source} is not a genlab manifest (not a JSON object); it may be damaged")
    schema = meta.get("schema", 0)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
        raise RunError(f"{source} has an invalid schema {schema!r}; it may be damaged")
    if schema > SCHEMA:
        writer = meta.get("genlab_version", "a newer genlab")
        raise RunError(
            f"{source} was written by genlab {writer} in run format {schema}, newer than the "
            f"format {SCHEMA} that genlab {__version__} reads: upgrade genlab "
            "(pip install -U genlab)"
        )
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise RunError(f"{source} lacks {', '.join(missing)}; it is not a complete genlab manifest")
    if schema == 0:  # genlab 0.1.0's config.json: the same fields, without the schema
        data = meta["data"]
        meta = {
            "schema": 1,
            "genlab_version": meta.get("genlab_version", "0.1.0"),
            "family": meta["family"],
            "config": meta["config"],
            "data": data,
            "data_fingerprint": data.get("fingerprint", ""),
            "data_files": list(data.get("files", [])),
            "parameters": meta.get("parameters"),
            "init_from": meta.get("init_from"),
        }
    return meta
