"""A store of runs, prompts, generations and their embeddings, with keyword, vector and hybrid
search and deduplication on insert.

`open_store(location)`: a folder is the embedded SQLite store (store.sqlite and files/ inside
it); a postgresql:// address is the PostgreSQL store, its files kept in `files` (default
$GENLAB_STORE_FILES or ./genlab-store-files). Without a location: $GENLAB_STORE or runs/store.
"""

from __future__ import annotations

import os
from pathlib import Path

from genlab.store.base import (
    MODES,
    NEAR_DUPLICATE,
    Added,
    Generation,
    Hit,
    Item,
    RunRecord,
    Store,
    fuse,
)

__all__ = [
    "MODES",
    "NEAR_DUPLICATE",
    "Added",
    "Generation",
    "Hit",
    "Item",
    "RunRecord",
    "Store",
    "default_location",
    "fuse",
    "open_store",
]

DEFAULT = "runs/store"


def default_location() -> str:
    """$GENLAB_STORE, or runs/store (beside the runs of the README's commands)."""
    return os.environ.get("GENLAB_STORE") or DEFAULT


def open_store(
    location: str | Path | None = None,
    *,
    files: str | Path | None = None,
    near_duplicate: float = NEAR_DUPLICATE,
) -> Store:
    """The store at `location` (a folder, or a postgresql:// address)."""
    where = str(location or default_location())
    if where.startswith(("postgresql://", "postgres://")):
        from genlab.store.postgres import PostgresStore

        files = files or os.environ.get("GENLAB_STORE_FILES") or "genlab-store-files"
        return PostgresStore(where, files, near_duplicate=near_duplicate)
    from genlab.store.sqlite import SQLiteStore

    return SQLiteStore(where, near_duplicate=near_duplicate)
