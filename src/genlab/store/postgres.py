"""The server backend: PostgreSQL through psycopg 3 (the `postgres` extra).

Keyword search is PostgreSQL's full-text search (a tsvector per generation under a GIN index,
ranked by ts_rank_cd). Vectors are kept as float32 bytes and searched exactly in memory like the
SQLite backend; where the pgvector extension is installed in the database they are also kept as
`vector` values and searched by the database (`<=>`, cosine distance). Writers take a
transaction-scoped advisory lock, so a duplicate check and its insert are one step across
processes. Generations' files live in a local folder (`files`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from genlab.errors import DataError, UsageError
from genlab.store.base import NEAR_DUPLICATE, Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('schema', 1), ('epoch', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS runs (
    id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    family TEXT NOT NULL, config TEXT NOT NULL, metrics TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS generations (
    id BIGSERIAL PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    suffix TEXT NOT NULL, size BIGINT NOT NULL, run TEXT NOT NULL, family TEXT NOT NULL,
    prompt_id BIGINT REFERENCES prompts(id), seed BIGINT, options TEXT NOT NULL,
    metrics TEXT NOT NULL, text TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    seen BIGINT NOT NULL DEFAULT 1, space TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS generations_run ON generations(run);
CREATE TABLE IF NOT EXISTS embeddings (
    gen_id BIGINT PRIMARY KEY REFERENCES generations(id), space TEXT NOT NULL,
    dim INTEGER NOT NULL, vector BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS embeddings_space ON embeddings(space, gen_id);
CREATE TABLE IF NOT EXISTS search (gen_id BIGINT PRIMARY KEY, body TSVECTOR NOT NULL);
CREATE INDEX IF NOT EXISTS search_body ON search USING GIN (body);
"""

LOCK = 0x67656E6C6162
"""The advisory lock key of writers ('genlab' in ASCII)."""
WORD = re.compile(r"\w+", re.UNICODE)


class _Cursor:
    """A psycopg cursor that takes the `?` placeholders of the shared SQL."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cur.execute(sql.replace("?", "%s"), tuple(params))

    def fetchone(self) -> Any:
        return self.cur.fetchone()

    def fetchall(self) -> list[tuple]:
        return self.cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self.cur.rowcount


class PostgresStore(Store):
    """The store in the PostgreSQL database `dsn` (postgresql://...), files in `files`."""

    backend = "postgres"

    def __init__(
        self, dsn: str, files: str | Path, *, near_duplicate: float = NEAR_DUPLICATE
    ) -> None:
        try:
            import psycopg
        except ImportError:
            raise UsageError(
                "a PostgreSQL store needs psycopg: pip install 'genlab[postgres]'"
            ) from None
        super().__init__(Path(files), near_duplicate=near_duplicate)
        self._psycopg = psycopg
        self.dsn = dsn
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self.pgvector = False
        with self._write() as cur:
            cur.cur.execute(SCHEMA)
            cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
            self.pgvector = cur.fetchone() is not None
            if self.pgvector:
                cur.execute("ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS vec vector")

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self.dsn, autocommit=True)
            except self._psycopg.Error as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise DataError(
                    f"cannot connect to the PostgreSQL store ({first}); check the DSN and that "
                    "the server runs"
                ) from None
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[_Cursor]:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as raw:
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
            yield _Cursor(raw)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._conn().cursor() as cur:
            cur.execute(sql.replace("?", "%s"), tuple(params))
            return cur.fetchall()

    def _insert_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        cur.execute(sql + " RETURNING id", params)
        return int(cur.fetchone()[0])

    def _index_text(self, cur: Any, gen_id: int, text: str) -> None:
        cur.execute(
            "INSERT INTO search (gen_id, body) VALUES (?, to_tsvector('english', ?))",
            (gen_id, text),
        )

    def _unindex(self, cur: Any, gen_id: int) -> None:
        cur.execute("DELETE FROM search WHERE gen_id = ?", (gen_id,))

    def _keyword(self, query: str, kind: str | None, k: int) -> list[int]:
        words = WORD.findall(query.lower())
        if not words:
            return []
        tsq = " | ".join(words)  # \w+ words only: no tsquery operators
        sql = (
            "SELECT s.gen_id FROM search s JOIN generations g ON g.id = s.gen_id, "
            "to_tsquery('english', ?) q WHERE s.body @@ q"
        )
        params: list[Any] = [tsq]
        if kind:
            sql += " AND g.kind = ?"
            params.append(kind)
        sql += " ORDER BY ts_rank_cd(s.body, q) DESC, s.gen_id LIMIT ?"
        return [r[0] for r in self._query(sql, (*params, k))]

    def _nearest(
        self, space: str, vector: np.ndarray, k: int, *, fresh: bool = True
    ) -> list[tuple[int, float]]:
        if not self.pgvector:
            return super()._nearest(space, vector, k, fresh=fresh)
        literal = "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector).reshape(-1)) + "]"
        rows = self._query(
            "SELECT gen_id, 1 - (vec <=> ?::vector) FROM embeddings "
            "WHERE space = ? AND vec IS NOT NULL ORDER BY vec <=> ?::vector LIMIT ?",
            (literal, space, literal, k),
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    def add(self, item: Any) -> Any:
        added = super().add(item)
        if self.pgvector and added.status == "new" and item.vector is not None:
            literal = "[" + ",".join(f"{x:.7g}" for x in np.asarray(item.vector).reshape(-1)) + "]"
            with self._write() as cur:
                cur.execute(
                    "UPDATE embeddings SET vec = ?::vector WHERE gen_id = ?", (literal, added.id)
                )
        return added

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
