"""The store's interface, its records, and what both backends share: content-addressed files,
deduplication on insert, the in-memory vector matrix of exact cosine search and rank fusion.

A backend (SQLite, PostgreSQL) supplies the SQL: a write transaction that serializes writers
(so that a hash or near-duplicate check and the insert that follows are one step), keyword
search, and the rows of vectors added since a given id.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from genlab.errors import UsageError
from genlab.io.atomic import write_bytes_atomic

Mode = Literal["hybrid", "keyword", "vector"]
MODES: tuple[str, ...] = ("hybrid", "keyword", "vector")
RRF_K = 60
"""Reciprocal-rank fusion constant (Cormack, Clarke and Buettcher, 2009): score = sum 1/(k + r)."""
NEAR_DUPLICATE = 0.98
"""Default cosine similarity at or above which a new item counts as a near-duplicate."""


@dataclass
class RunRecord:
    """A run the store knows: its name, directory, family, config and metrics."""

    id: int
    name: str
    path: str
    family: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Item:
    """One generation to store: its bytes and what it came from."""

    content: bytes
    kind: str
    """Data kind of the run (image, text, audio, ...)."""
    suffix: str
    """File suffix of `content` (.png, .txt, .wav, ...)."""
    text: str = ""
    """Searchable words besides the metadata (a text sample itself, a predicted label)."""
    run: str = ""
    family: str = ""
    prompt: str | None = None
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None
    """Its embedding (unit length) in `space`; None: not embedded."""
    space: str = ""
    """Name of the embedding space (the encoder and what it was trained on)."""


@dataclass
class Generation:
    """A stored generation."""

    id: int
    sha256: str
    kind: str
    suffix: str
    size: int
    run: str
    family: str
    prompt: str | None
    seed: int | None
    options: dict[str, Any]
    metrics: dict[str, Any]
    text: str
    created: float
    seen: int = 1
    """How many times it was generated (duplicates count here instead of being stored)."""
    space: str = ""

    @property
    def name(self) -> str:
        return self.sha256 + self.suffix

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "file": self.name}


@dataclass
class Added:
    """What an insert did: `new`, or `duplicate` (same sha256) or `near-duplicate` (cosine at
    or above the threshold) of generation `id`, which was stored before."""

    status: Literal["new", "duplicate", "near-duplicate"]
    id: int
    sha256: str
    similarity: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Hit:
    """A search result: the generation, its fused score and its rank in each list."""

    generation: Generation
    score: float
    keyword_rank: int | None = None
    vector_rank: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.generation.to_dict(),
            "score": self.score,
            "keyword_rank": self.keyword_rank,
            "vector_rank": self.vector_rank,
        }


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of ranked id lists: (id, score), best first (ties by id)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, i in enumerate(ranking, start=1):
            scores[i] = scores.get(i, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda t: (-t[1], t[0]))


def unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (a zero row stays zero)."""
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


class VectorMatrix:
    """The vectors of one embedding space as one normalized float32 matrix in memory, for exact
    cosine search by one matrix product. It grows by the rows added since it last looked
    (`after` the largest id it holds) and is rebuilt when the store's epoch changes (gc).

    `data` is one (ids, rows) tuple that updates replace whole, so a search sees either the old
    or the new matrix, never half of one. `lock` orders updaters; `product` lets one search's
    matrix product run at a time, as BLAS already spreads one product over the cores and
    concurrent ones oversubscribe them."""

    def __init__(self) -> None:
        self.data: tuple[np.ndarray, np.ndarray] = (
            np.zeros(0, dtype=np.int64),
            np.zeros((0, 0), dtype=np.float32),
        )
        self.epoch = -1
        self.stamp: tuple[int, int] | None = None  # the store's stamp it is known to be current at
        self.lock = threading.Lock()
        self.product = threading.Lock()

    @property
    def ids(self) -> np.ndarray:
        return self.data[0]

    @property
    def last_id(self) -> int:
        ids = self.data[0]
        return int(ids[-1]) if len(ids) else 0

    def extend(self, ids: Sequence[int], rows: np.ndarray) -> None:
        if not len(ids):
            return
        old_ids, old_rows = self.data
        rows = unit(rows)
        if old_rows.size:
            rows = np.concatenate([old_rows, rows])
        self.data = (np.concatenate([old_ids, np.asarray(ids, dtype=np.int64)]), rows)

    def reset(self, epoch: int) -> None:
        self.data = (np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        self.epoch = epoch
        self.stamp = None

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k ids of highest cosine similarity to `query`, with their similarity."""
        ids, rows = self.data
        if not len(ids):
            return []
        q = unit(query).reshape(-1)
        if q.shape[0] != rows.shape[1]:
            return []
        with self.product:
            sims = rows @ q
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(ids[i]), float(sims[i])) for i in top]


class Recent:
    """The answers to recent keyword searches, valid while the store's stamp (newest
    generation id, epoch) is the one they were computed at: any insert or delete changes it."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.answers: OrderedDict[tuple, tuple[tuple[int, int], list[int]]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple, stamp: tuple[int, int]) -> list[int] | None:
        with self.lock:
            found = self.answers.get(key)
            if found is None or found[0] != stamp:
                return None
            self.answers.move_to_end(key)
            return found[1]

    def put(self, key: tuple, stamp: tuple[int, int], ids: list[int]) -> None:
        with self.lock:
            self.answers[key] = (stamp, ids)
            self.answers.move_to_end(key)
            while len(self.answers) > self.size:
                self.answers.popitem(last=False)


class Store:
    """A store of runs, prompts, generations (content-addressed files) and their embeddings.

    `files`: the folder of the generations' files, each named by the sha256 of its bytes.
    `near_duplicate`: cosine similarity at or above which an insert is a near-duplicate (1.0 or
    more: only exact duplicates). Subclasses are the backends; all methods are thread-safe."""

    backend: str = ""

    def __init__(self, files: Path, *, near_duplicate: float = NEAR_DUPLICATE) -> None:
        self.files = Path(files)
        self.near_duplicate = near_duplicate
        self._matrices: dict[str, VectorMatrix] = {}
        self._matrices_lock = threading.Lock()
        self._recent = Recent()

    # to implement ----------------------------------------------------------------------------
    def _write(self) -> AbstractContextManager[Any]:
        """A write transaction that no other writer runs alongside (any process); yields a
        cursor-like object with `execute(sql, params)` (`?` placeholders)."""
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read-only query (`?` placeholders)."""
        raise NotImplementedError

    def _insert_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT ... and return the new row's id."""
        raise NotImplementedError

    def _index_text(self, cur: Any, gen_id: int, text: str) -> None:
        """Add a generation's searchable text to the keyword index."""
        raise NotImplementedError

    def _unindex(self, cur: Any, gen_id: int) -> None:
        raise NotImplementedError

    def _keyword(self, query: str, kind: str | None, k: int) -> list[int]:
        """Generation ids matching the words of `query`, best first."""
        raise NotImplementedError

    def _vector_param(self, vector: np.ndarray) -> Any:
        """The database value of a vector."""
        return np.asarray(vector, dtype=np.float32).tobytes()

    def _vector_value(self, raw: Any) -> np.ndarray:
        return np.frombuffer(bytes(raw), dtype=np.float32)

    def close(self) -> None:
        """Release the database connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs -------------------------------------------------------------------------------------
    def add_run(
        self,
        name: str,
        *,
        path: str = "",
        family: str = "",
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> int:
        """Record a run (or update the one of that name); returns its id."""
        cfg, met = json.dumps(config or {}), json.dumps(metrics or {})
        with self._write() as cur:
            cur.execute("SELECT id FROM runs WHERE name = ?", (name,))
            row = cur.fetchone()
            if row:
                cur.execute(
                    "UPDATE runs SET path = ?, family = ?, config = ?, metrics = ? WHERE id = ?",
                    (path, family, cfg, met, row[0]),
                )
                return int(row[0])
            return self._insert_id(
                cur,
                "INSERT INTO runs (name, path, family, config, metrics, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, path, family, cfg, met, time.time()),
            )

    def runs(self) -> list[RunRecord]:
        rows = self._query(
            "SELECT id, name, path, family, config, metrics, created FROM runs ORDER BY name"
        )
        return [
            RunRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6])
            for r in rows
        ]

    # generations -------------------------------------------------------------------------------
    def file_path(self, digest: str, suffix: str = "") -> Path:
        """Where the file of a generation lives: files/ab/abcdef...suffix."""
        return self.files / digest[:2] / (digest + suffix)

    def add(self, item: Item) -> Added:
        """Store a generation unless it duplicates a stored one (same bytes, or an embedding at
        least `near_duplicate` similar in the same space): then the stored one's `seen` count
        grows and the duplicate is reported, not stored."""
        digest = sha256(item.content)
        vector = None if item.vector is None else unit(item.vector).reshape(-1)
        with self._write() as cur:
            cur.execute("SELECT id FROM generations WHERE sha256 = ?", (digest,))
            row = cur.fetchone()
            if row:
                cur.execute("UPDATE generations SET seen = seen + 1 WHERE id = ?", (row[0],))
                return Added("duplicate", int(row[0]), digest)
            if vector is not None and self.near_duplicate < 1.0:
                near = self._nearest(item.space, vector, 1, fresh=True)
                if near and near[0][1] >= self.near_duplicate:
                    gid, sim = near[0]
                    cur.execute("UPDATE generations SET seen = seen + 1 WHERE id = ?", (gid,))
                    cur.execute("SELECT sha256 FROM generations WHERE id = ?", (gid,))
                    return Added("near-duplicate", gid, cur.fetchone()[0], sim)
            path = self.file_path(digest, item.suffix)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(path, item.content)
            prompt_id = None
            if item.prompt is not None:
                cur.execute("SELECT id FROM prompts WHERE text = ?", (item.prompt,))
                row = cur.fetchone()
                prompt_id = (
                    row[0]
                    if row
                    else self._insert_id(
                        cur, "INSERT INTO prompts (text) VALUES (?)", (item.prompt,)
                    )
                )
            gid = self._insert_id(
                cur,
                "INSERT INTO generations (sha256, kind, suffix, size, run, family, prompt_id, "
                "seed, options, metrics, text, created, seen, space) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    digest,
                    item.kind,
                    item.suffix,
                    len(item.content),
                    item.run,
                    item.family,
                    prompt_id,
                    item.seed,
                    json.dumps(item.options, sort_keys=True, default=str),
                    json.dumps(item.metrics, sort_keys=True, default=str),
                    item.text,
                    time.time(),
                    item.space if vector is not None else "",
                ),
            )
            if vector is not None:
                cur.execute(
                    "INSERT INTO embeddings (gen_id, space, dim, vector) VALUES (?, ?, ?, ?)",
                    (gid, item.space, len(vector), self._vector_param(vector)),
                )
            self._index_text(cur, gid, searchable(item))
            return Added("new", gid, digest)

    _COLUMNS = (
        "g.id, g.sha256, g.kind, g.suffix, g.size, g.run, g.family, p.text, g.seed, g.options, "
        "g.metrics, g.text, g.created, g.seen, g.space"
    )
    _FROM = "FROM generations g LEFT JOIN prompts p ON p.id = g.prompt_id"

    def _generation(self, r: tuple) -> Generation:
        return Generation(
            id=r[0],
            sha256=r[1],
            kind=r[2],
            suffix=r[3],
            size=r[4],
            run=r[5],
            family=r[6],
            prompt=r[7],
            seed=r[8],
            options=json.loads(r[9]),
            metrics=json.loads(r[10]),
            text=r[11],
            created=r[12],
            seen=r[13],
            space=r[14],
        )

    def get(self, key: int | str) -> Generation:
        """A generation by id or by a prefix (6 characters or more) of its sha256."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit() and len(key) < 6):
            rows = self._query(f"SELECT {self._COLUMNS} {self._FROM} WHERE g.id = ?", (int(key),))
        else:
            key = str(key).lower()
            if len(key) < 6 or any(c not in "0123456789abcdef" for c in key):
                raise UsageError(f"'{key}' is neither an id nor 6+ hex digits of a sha256")
            rows = self._query(
                f"SELECT {self._COLUMNS} {self._FROM} WHERE g.sha256 LIKE ? LIMIT 2", (key + "%",)
            )
            if len(rows) > 1:
                raise UsageError(f"'{key}' matches several generations; give more digits")
        if not rows:
            raise UsageError(f"no generation '{key}' in the store; 'genlab store search' finds ids")
        return self._generation(rows[0])

    def read(self, generation: Generation) -> bytes:
        """The bytes of a stored generation."""
        return self.file_path(generation.sha256, generation.suffix).read_bytes()

    def history(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        run: str | None = None,
        kind: str | None = None,
    ) -> list[Generation]:
        """Stored generations, newest first."""
        where, params = [], []
        if run:
            where.append("g.run = ?")
            params.append(run)
        if kind:
            where.append("g.kind = ?")
            params.append(kind)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(
            f"SELECT {self._COLUMNS} {self._FROM} {clause} ORDER BY g.id DESC LIMIT ? OFFSET ?",
            (*params, int(limit), int(offset)),
        )
        return [self._generation(r) for r in rows]

    def vector_of(self, gid: int) -> tuple[str, np.ndarray] | None:
        """The embedding space and vector of a stored generation (None: not embedded)."""
        rows = self._query("SELECT space, vector FROM embeddings WHERE gen_id = ?", (gid,))
        return (rows[0][0], self._vector_value(rows[0][1])) if rows else None

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM generations")[0][0])

    def _by_ids(self, ids: Sequence[int]) -> dict[int, Generation]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._query(f"SELECT {self._COLUMNS} {self._FROM} WHERE g.id IN ({marks})", ids)
        return {r[0]: self._generation(r) for r in rows}

    # vectors ---------------------------------------------------------------------------------
    def spaces(self, kind: str | None = None) -> list[str]:
        """The embedding spaces holding vectors (of generations of `kind`)."""
        if kind:
            rows = self._query(
                "SELECT DISTINCT space FROM generations WHERE space != '' AND kind = ?", (kind,)
            )
        else:
            rows = self._query("SELECT DISTINCT space FROM generations WHERE space != ''")
        return sorted(r[0] for r in rows)

    def _epoch(self) -> int:
        rows = self._query("SELECT value FROM meta WHERE key = 'epoch'")
        return int(rows[0][0]) if rows else 0

    def _matrix(self, space: str, *, fresh: bool) -> VectorMatrix:
        """The space's vector matrix, brought up to date with the database (when `fresh`, or
        when it has never been read)."""
        with self._matrices_lock:
            m = self._matrices.setdefault(space, VectorMatrix())
        with m.lock:
            epoch = self._epoch() if fresh or m.epoch < 0 else m.epoch
            if epoch != m.epoch:
                m.reset(epoch)
            if fresh or not len(m.ids):
                rows = self._query(
                    "SELECT gen_id, vector FROM embeddings WHERE space = ? AND gen_id > ? "
                    "ORDER BY gen_id",
                    (space, m.last_id),
                )
                if rows:
                    m.extend(
                        [r[0] for r in rows], np.stack([self._vector_value(r[1]) for r in rows])
                    )
        return m

    def _nearest(
        self, space: str, vector: np.ndarray, k: int, *, fresh: bool = True
    ) -> list[tuple[int, float]]:
        return self._matrix(space, fresh=fresh).nearest(vector, k)

    # search ----------------------------------------------------------------------------------
    def search(
        self,
        query: str = "",
        *,
        vector: np.ndarray | None = None,
        space: str | None = None,
        kind: str | None = None,
        k: int = 10,
        mode: str = "hybrid",
        depth: int = 50,
    ) -> list[Hit]:
        """The k best generations for `query` (words) and `vector` (an embedding of the query in
        `space`), by `mode`: keyword, vector, or both fused by reciprocal rank (hybrid)."""
        if mode not in MODES:
            raise UsageError(f"search mode must be one of {', '.join(MODES)}; got '{mode}'")
        if k < 1:
            raise UsageError(f"k must be at least 1; got {k}")
        depth = max(depth, k)
        stamp = self._stamp()
        lists: list[list[int]] = []
        kw: list[int] = []
        vec: list[int] = []
        if mode in ("hybrid", "keyword") and query.strip():
            key = (query, kind, depth)
            kw = self._recent.get(key, stamp)
            if kw is None:
                kw = self._keyword(query, kind, depth)
                self._recent.put(key, stamp, kw)
            lists.append(kw)
        if mode in ("hybrid", "vector") and vector is not None and space:
            m = self._matrices.get(space)
            stale = m is None or m.stamp != stamp
            near = self._nearest(space, vector, depth, fresh=stale)
            if stale and (m := self._matrices.get(space)) is not None:
                m.stamp = stamp  # it holds at least every row up to the stamp
            if kind:
                kinds = self._kinds([i for i, _ in near])
                near = [(i, s) for i, s in near if kinds.get(i) == kind]
            vec = [i for i, _ in near]
            lists.append(vec)
        fused = fuse(lists)[:k]
        found = self._by_ids([i for i, _ in fused])
        kw_rank = {i: r for r, i in enumerate(kw, 1)}
        vec_rank = {i: r for r, i in enumerate(vec, 1)}
        return [
            Hit(found[i], score, kw_rank.get(i), vec_rank.get(i))
            for i, score in fused
            if i in found
        ]

    def _stamp(self) -> tuple[int, int]:
        """(newest generation id, epoch): it changes with every insert and delete, so answers
        computed at one stamp hold while it stays (writers are serialized, so ids grow in
        commit order)."""
        row = self._query(
            "SELECT (SELECT MAX(id) FROM generations), (SELECT value FROM meta WHERE key = 'epoch')"
        )[0]
        return int(row[0] or 0), int(row[1] or 0)

    def _kinds(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._query(f"SELECT id, kind FROM generations WHERE id IN ({marks})", ids)
        return dict(rows)

    # maintenance -------------------------------------------------------------------------------
    def delete(self, ids: Sequence[int]) -> int:
        """Remove generations (their rows; gc removes their files); returns how many."""
        n = 0
        with self._write() as cur:
            for gid in ids:
                self._unindex(cur, gid)
                cur.execute("DELETE FROM embeddings WHERE gen_id = ?", (gid,))
                cur.execute("DELETE FROM generations WHERE id = ?", (gid,))
                n += cur.rowcount
            self._bump_epoch(cur)
        return n

    def _bump_epoch(self, cur: Any) -> None:
        cur.execute("UPDATE meta SET value = value + 1 WHERE key = 'epoch'")

    def gc(self) -> dict[str, int]:
        """Remove files no generation refers to (and stray temporary files), and prompts no
        generation uses; returns what was removed."""
        with self._write() as cur:
            cur.execute("SELECT sha256, suffix FROM generations")
            keep = {d + s for d, s in cur.fetchall()}
            cur.execute(
                "DELETE FROM prompts WHERE id NOT IN "
                "(SELECT prompt_id FROM generations WHERE prompt_id IS NOT NULL)"
            )
            prompts = max(cur.rowcount, 0)
            files = 0
            for path in self._stored_files():
                if path.name not in keep:
                    path.unlink(missing_ok=True)
                    files += 1
        return {"files": files, "prompts": prompts}

    def _stored_files(self) -> Iterator[Path]:
        if self.files.is_dir():
            for folder in self.files.iterdir():
                if folder.is_dir() and len(folder.name) == 2:
                    yield from (p for p in folder.iterdir() if p.is_file())

    def export(self, dest: str | Path) -> int:
        """Copy every generation's file into `dest` with an index.jsonl of their metadata (and
        runs.json); returns how many generations."""
        dest = Path(dest)
        (dest / "files").mkdir(parents=True, exist_ok=True)
        n, lines = 0, []
        offset = 0
        while True:
            batch = self.history(limit=500, offset=offset)
            if not batch:
                break
            for g in batch:
                write_bytes_atomic(dest / "files" / g.name, self.read(g))
                lines.append(json.dumps(g.to_dict(), sort_keys=True))
                n += 1
            offset += len(batch)
        write_bytes_atomic(dest / "index.jsonl", ("\n".join(lines) + "\n").encode())
        runs = [r.to_dict() for r in self.runs()]
        write_bytes_atomic(dest / "runs.json", json.dumps(runs, indent=1).encode())
        return n


def searchable(item: Item) -> str:
    """The words the keyword index holds for an item: its text, prompt, run, family, kind and
    option values."""
    words = [item.text, item.prompt or "", item.run, item.family, item.kind]
    words += [f"{k} {v}" for k, v in sorted(item.options.items()) if v not in (None, "")]
    return " ".join(w for w in words if w)
