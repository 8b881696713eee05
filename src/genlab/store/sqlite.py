"""The embedded backend: one SQLite file beside the generations' files, no server.

Keyword search is SQLite's FTS5 (BM25 ranking); vectors are float32 blobs searched exactly in
memory (genlab.store.base.VectorMatrix). WAL journaling lets readers run beside the one writer;
writers take the database's write lock first (BEGIN IMMEDIATE), so a duplicate check and its
insert are one step across threads and processes.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genlab.errors import DataError
from genlab.store.base import NEAR_DUPLICATE, Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', 1), ('epoch', 0);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL, family TEXT NOT NULL,
    config TEXT NOT NULL, metrics TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    suffix TEXT NOT NULL, size INTEGER NOT NULL, run TEXT NOT NULL, family TEXT NOT NULL,
    prompt_id INTEGER REFERENCES prompts(id), seed INTEGER, options TEXT NOT NULL,
    metrics TEXT NOT NULL, text TEXT NOT NULL, created REAL NOT NULL,
    seen INTEGER NOT NULL DEFAULT 1, space TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS generations_run ON generations(run);
CREATE TABLE IF NOT EXISTS embeddings (
    gen_id INTEGER PRIMARY KEY REFERENCES generations(id), space TEXT NOT NULL,
    dim INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS embeddings_space ON embeddings(space, gen_id);
CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(body, tokenize = 'porter unicode61');
"""

WORD = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str) -> str:
    """Any of the words of `text`, each quoted (FTS5 syntax characters lose their meaning)."""
    return " OR ".join(f'"{w}"' for w in WORD.findall(text.lower()))


class SQLiteStore(Store):
    """The store in `root`: root/store.sqlite and root/files/."""

    backend = "sqlite"

    def __init__(self, root: str | Path, *, near_duplicate: float = NEAR_DUPLICATE) -> None:
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise DataError(f"{root} is a file; a SQLite store is a folder (give another path)")
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(root / "files", near_duplicate=near_duplicate)
        self.root, self.path = root, root / "store.sqlite"
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (a connection is used by one thread at a time)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=60, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=60000")
            except sqlite3.DatabaseError as e:
                raise DataError(f"{self.path} is not a usable SQLite store ({e})") from None
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        conn = self._conn()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._conn().execute(sql, tuple(params)).fetchall()

    def _insert_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        cur.execute(sql, tuple(params))
        return int(cur.lastrowid)

    def _index_text(self, cur: Any, gen_id: int, text: str) -> None:
        cur.execute("INSERT INTO search (rowid, body) VALUES (?, ?)", (gen_id, text))

    def _unindex(self, cur: Any, gen_id: int) -> None:
        cur.execute("DELETE FROM search WHERE rowid = ?", (gen_id,))

    def _keyword(self, query: str, kind: str | None, k: int) -> list[int]:
        match = fts_query(query)
        if not match:
            return []
        if kind:
            rows = self._query(
                "SELECT s.rowid FROM search s JOIN generations g ON g.id = s.rowid "
                "WHERE search MATCH ? AND g.kind = ? ORDER BY bm25(search) LIMIT ?",
                (match, kind, k),
            )
        else:
            rows = self._query(
                "SELECT rowid FROM search WHERE search MATCH ? ORDER BY bm25(search) LIMIT ?",
                (match, k),
            )
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
