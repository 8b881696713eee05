"""Load test of `genlab serve` search over a store of 10,000 items, search quality on a small
labelled query set, and concurrent writers.

1. Builds a SQLite store of `--items` texts: the labelled documents below plus generated
   distractor sentences, embedded by the store's text encoder (all-MiniLM-L6-v2).
2. Search quality: recall@10 of keyword, vector and hybrid search on the labelled queries
   (each query has 3 relevant documents, some sharing no word with it), in process.
3. Starts `genlab serve` on 127.0.0.1 in a subprocess and sends `--requests` search requests
   (hybrid) from `--clients` concurrent clients: repeated queries (the server keeps recent
   query vectors) and fresh ones (each query encoded anew). Prints requests/s, p50/p99, errors.
4. 16 writer processes insert overlapping items into the same store while the server serves;
   counts lost records (absent) and duplicated ones (stored twice) afterwards.

Needs the store and serve extras. Prints key=value lines last.

    python bench/serve_load.py --items 10000 --requests 2000 --clients 8
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from genlab.store import Item, open_store
from genlab.store.embed import text_encoder

# query -> three relevant documents (the first shares words with the query; the others say the
# same with other words)
LABELLED = {
    "a ship lost in a storm at sea": [
        "the ship was lost at sea when the storm broke",
        "waves swallowed the vessel during the tempest",
        "the sailors drowned as the gale sank their boat",
    ],
    "the king is dead": [
        "the old king is dead and the crown has fallen",
        "the monarch has passed away in the night",
        "our sovereign breathed his last this morning",
    ],
    "two lovers meet in secret": [
        "the lovers meet in secret under the balcony",
        "the young couple arranged a hidden rendezvous",
        "sweethearts embraced where no one could see them",
    ],
    "a poisoned cup of wine": [
        "she drank the poisoned wine from the golden cup",
        "the goblet held a deadly draught",
        "the toxic drink killed the prince at the feast",
    ],
    "the army marches to war": [
        "the army marches to war at dawn",
        "soldiers advanced toward the battlefield",
        "troops moved out to fight the enemy",
    ],
    "a ghost walks at midnight": [
        "a ghost walks the castle walls at midnight",
        "the spirit of the dead appears after dark",
        "a phantom haunts the battlements in the small hours",
    ],
    "money and debts": [
        "he borrowed money and his debts grew",
        "the merchant owed a fortune to the lender",
        "unpaid loans ruined the trader",
    ],
    "a wedding feast with music": [
        "the wedding feast was full of music",
        "guests danced at the marriage banquet",
        "the bride and groom celebrated with songs",
    ],
    "the queen weeps for her son": [
        "the queen weeps for her son",
        "the mother mourned her boy with tears",
        "her majesty grieved over the prince she bore",
    ],
    "a sword fight in the street": [
        "a sword fight broke out in the street",
        "they drew their rapiers and dueled in the square",
        "blades clashed between the rival houses in town",
    ],
    "the garden in spring": [
        "the garden blooms in spring",
        "flowers open when the warm season returns",
        "blossoms cover the orchard in april",
    ],
    "a letter with bad news": [
        "the letter brought bad news",
        "the message told of a terrible loss",
        "she read the grim tidings from the courier",
    ],
    "the moon over the sea": [
        "the moon rose over the sea",
        "silver light lay on the ocean at night",
        "the lunar glow shone across the waves",
    ],
    "a traitor in the court": [
        "a traitor hides in the court",
        "one of the nobles betrayed the crown",
        "a disloyal lord plotted against the throne",
    ],
    "hunger in the city": [
        "hunger spread through the city",
        "the townsfolk were starving for bread",
        "famine gripped the streets of the town",
    ],
    "a doctor heals the sick": [
        "the doctor heals the sick",
        "the physician cured the fevered patient",
        "a healer tended the ill with herbs",
    ],
    "an old man tells a story": [
        "the old man tells a story by the fire",
        "the elder recounted a tale of long ago",
        "grandfather spoke of legends to the children",
    ],
    "a horse race": [
        "the horse race began at noon",
        "riders galloped their steeds to the finish",
        "the stallions competed on the track",
    ],
    "snow in winter": [
        "snow falls in winter",
        "the cold season covered the fields in white",
        "frost and flakes blanketed the hills in december",
    ],
    "a thief in the night": [
        "a thief came in the night",
        "a burglar crept into the house after dark",
        "the robber stole the jewels while all slept",
    ],
}

SUBJECTS = [
    "the servant",
    "a merchant",
    "the duke",
    "my lady",
    "the captain",
    "an old friend",
    "the fool",
    "the bishop",
    "a stranger",
    "the gardener",
    "the nurse",
    "a soldier",
]
VERBS = ["speaks of", "dreams of", "asks about", "forgets", "remembers", "laughs at",
         "writes about", "sings of", "argues over", "prays for"]  # fmt: skip
THINGS = ["the harvest", "his cousin", "the bridge", "a lost glove", "the market", "the weather",
          "an empty room", "the tower", "a broken clock", "the river", "the candles",
          "the stairs", "a borrowed book", "the kitchen", "the rain"]  # fmt: skip
TAILS = ["today", "again", "at length", "in jest", "with care", "before supper", "once more",
         "without end", "for an hour", "at the gate"]  # fmt: skip


def distractors(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(TAILS)}, "
        f"note {i}"
        for i in range(n)
    ]


def build(root: Path, items: int) -> tuple[dict[str, list[int]], float]:
    """The store of `items` texts; returns query -> relevant ids and the seconds it took."""
    t0 = time.perf_counter()
    enc = text_encoder()
    docs = [(q, d) for q, ds in LABELLED.items() for d in ds]
    texts = [d for _, d in docs] + distractors(items - len(docs))
    vectors = np.concatenate([enc.embed(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    relevant: dict[str, list[int]] = {q: [] for q in LABELLED}
    with open_store(root, near_duplicate=1.0) as store:
        order = list(range(len(texts)))
        random.Random(1).shuffle(order)
        for i in order:
            t = texts[i]
            added = store.add(Item(t.encode(), "text", ".txt", text=t, run="bench",
                                   family="bench", vector=vectors[i], space=enc.space))  # fmt: skip
            if i < len(docs):
                relevant[docs[i][0]].append(added.id)
    return relevant, time.perf_counter() - t0


def recall(root: Path, relevant: dict[str, list[int]], k: int = 10) -> dict[str, float]:
    enc = text_encoder()
    out = {}
    with open_store(root) as store:
        for mode in ("keyword", "vector", "hybrid"):
            got = []
            for q, ids in relevant.items():
                hits = store.search(q, vector=enc.query(q), space=enc.space, k=k, mode=mode)
                found = {h.generation.id for h in hits}
                got.append(len(found & set(ids)) / len(ids))
            out[mode] = float(np.mean(got))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, runs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genlab", "serve", "--runs", str(runs), "--store-path", str(root),
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/api/info", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start: " + proc.stderr.read().decode()[-2000:])


def load(url: str, queries: list[str], requests: int, clients: int) -> dict[str, float]:
    """`requests` searches from `clients` threads (each its own connection)."""
    lat: list[float] = []
    errors = 0
    lock = threading.Lock()
    todo = iter(range(requests))

    def client() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=30) as c:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                t = time.perf_counter()
                try:
                    r = c.get("/api/search", params={"q": queries[i % len(queries)], "k": 10})
                    ok = r.status_code == 200 and isinstance(r.json(), list)
                except httpx.HTTPError:
                    ok = False
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    errors += not ok

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = sorted(x * 1000 for x in lat)
    return {
        "req_per_s": len(ms) / wall,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "errors": errors,
    }


def writer(root: str, w: int, per: int, out: mp.Queue) -> None:
    """Writer w inserts `per` items; writers 2j and 2j+1 insert the same ones."""
    statuses = []
    with open_store(root) as store:
        for j in range(per):
            n = (w // 2) * per + j
            v = np.random.default_rng(10_000 + n).standard_normal(384).astype(np.float32)
            text = f"writer item {n}"
            a = store.add(Item(text.encode(), "text", ".txt", text=text, run="writers",
                               vector=v, space="bench:random"))  # fmt: skip
            statuses.append(a.status)
    out.put(statuses)


def writers(root: Path, n: int = 16, per: int = 50) -> dict[str, int]:
    with open_store(root) as store:
        before = store.count()
    q: mp.Queue = mp.Queue()
    ctx = [mp.Process(target=writer, args=(str(root), w, per, q)) for w in range(n)]
    for p in ctx:
        p.start()
    statuses = [s for _ in ctx for s in q.get(timeout=600)]
    for p in ctx:
        p.join()
    expected = (n // 2) * per
    with open_store(root) as store:
        rows = store._query(
            "SELECT text, COUNT(*) FROM generations WHERE run = 'writers' GROUP BY text"
        )
        seen = store._query("SELECT SUM(seen) FROM generations WHERE run = 'writers'")[0][0]
        after = store.count()
    stored = {t for t, _ in rows}
    return {
        "writers": n,
        "writes": len(statuses),
        "expected_records": expected,
        "records": after - before,
        "lost_records": len({f"writer item {i}" for i in range(expected)} - stored),
        "duplicated_records": sum(c - 1 for _, c in rows),
        "reported_duplicates": statuses.count("duplicate") + statuses.count("near-duplicate"),
        "seen_total": int(seen or 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--fresh", type=int, default=200, help="requests with never-seen queries")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory(prefix="genlab-serve-load-") as tmp:
        root, runs = Path(tmp) / "store", Path(tmp) / "runs"
        runs.mkdir()
        relevant, build_s = build(root, args.items)
        quality = recall(root, relevant)
        proc, url = start_server(root, runs)
        try:
            queries = list(LABELLED)
            httpx.get(url + "/api/search", params={"q": "warm up"}, timeout=300)
            for q in queries:  # the server's query-vector cache holds these afterwards
                httpx.get(url + "/api/search", params={"q": q}, timeout=60)
            repeated = load(url, queries, args.requests, args.clients)
            fresh_q = [f"{q} {w}" for q in queries for w in THINGS + TAILS][: args.fresh]
            fresh = load(url, fresh_q, len(fresh_q), args.clients)
            writes = writers(root)
            after = httpx.get(url + "/api/search", params={"q": "writer item 3", "k": 5})
            serves_after = after.status_code == 200
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"items={args.items}")
    print(f"build_s={build_s:.1f}")
    for mode, r in quality.items():
        print(f"recall_at_10_{mode}={r:.3f}")
    print(f"clients={args.clients}")
    for name, res in (("repeated", repeated), ("fresh", fresh)):
        for key, value in res.items():
            print(f"search_{name}_{key}={value:.1f}" if isinstance(value, float) else
                  f"search_{name}_{key}={value}")  # fmt: skip
    for key, value in writes.items():
        print(f"{key}={value}")
    print(f"serves_after_writes={serves_after}")


if __name__ == "__main__":
    main()
