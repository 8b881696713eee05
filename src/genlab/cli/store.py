"""`genlab store search|show|export|gc`: find and manage what `genlab sample --store` kept."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from genlab.cli.parser import common
from genlab.errors import UsageError

HELP = "search and manage the store of generations"

EPILOG = """examples:
  genlab sample runs/shakespeare --prompt "ROMEO:" -n 4 --store   # record into runs/store
  genlab store search "moon and night" --k 5                      # hybrid: keyword + vector
  genlab store search "class 7" --kind image --mode keyword
  genlab store search --like 3f2a9c1b --k 8                       # images/texts like this one
  genlab store show 3f2a9c1b
  genlab store export exported/
  genlab store gc
  genlab store search "rose" --store-path postgresql://user@localhost/genlab
"""


def add_store_path(p: argparse.ArgumentParser | Any) -> None:
    p.add_argument(
        "--store-path",
        metavar="PATH",
        help="the store: a folder (SQLite) or a postgresql:// address (default $GENLAB_STORE "
        "or runs/store)",
    )


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "store",
        help=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    actions = s.add_subparsers(dest="store_action", metavar="ACTION")
    f = actions.add_parser("search", help="hybrid, keyword or vector search", parents=[common()])
    f.add_argument("query", nargs="?", default="", help="words to look for")
    f.add_argument("--kind", help="only generations of this data kind (image, text, audio...)")
    f.add_argument("--k", type=int, default=10, help="number of results (default 10)")
    f.add_argument(
        "--mode",
        choices=("hybrid", "keyword", "vector"),
        default="hybrid",
        help="keyword (full-text), vector (embeddings) or both fused by reciprocal rank "
        "(default hybrid)",
    )
    f.add_argument("--like", metavar="ID", help="rank by similarity to this stored generation")
    f.add_argument("--json", action="store_true", help="one JSON object per result")
    add_store_path(f)
    sh = actions.add_parser("show", help="a generation's metadata (and text)", parents=[common()])
    sh.add_argument("id", help="its id or 6+ hex digits of its sha256")
    add_store_path(sh)
    e = actions.add_parser(
        "export", help="copy every generation and an index.jsonl to a folder", parents=[common()]
    )
    e.add_argument("dest", help="folder to write")
    add_store_path(e)
    g = actions.add_parser(
        "gc", help="remove files and prompts nothing refers to", parents=[common()]
    )
    add_store_path(g)


def run(a: argparse.Namespace) -> int:
    from genlab.store import open_store

    if a.store_action is None:
        raise UsageError("store needs an action: search, show, export or gc")
    with open_store(a.store_path) as store:
        if a.store_action == "search":
            return _search(store, a)
        if a.store_action == "show":
            g = store.get(a.id)
            print(json.dumps(g.to_dict(), indent=1, sort_keys=True))
            print(f"file: {store.file_path(g.sha256, g.suffix)}")
            return 0
        if a.store_action == "export":
            n = store.export(a.dest)
            print(f"exported {n} generations to {a.dest} (index.jsonl, runs.json, files/)")
            return 0
        removed = store.gc()
        print(f"removed {removed['files']} files and {removed['prompts']} prompts")
        return 0


def _search(store: Any, a: argparse.Namespace) -> int:
    from genlab.store import embed

    if a.k < 1:
        raise UsageError(f"--k must be at least 1; got {a.k}")
    if not a.query.strip() and not a.like:
        raise UsageError('search needs a query ("some words") or --like ID')
    vector = space = None
    if a.like:
        found = store.vector_of(store.get(a.like).id)
        if found is None:
            raise UsageError(f"generation {a.like} has no embedding; search it by words")
        space, vector = found
    elif a.mode != "keyword" and (a.kind in (None, "text")):
        if embed.text_available():
            enc = embed.text_encoder()
            vector, space = enc.query(a.query), enc.space
        elif a.mode == "vector":
            raise UsageError(
                "vector search of text needs the store extra: pip install 'genlab[store]'"
            )
    elif a.mode == "vector":
        raise UsageError(
            f"words cannot be compared with {a.kind} embeddings; use --like ID for vector "
            "search of them, or --mode keyword"
        )
    hits = store.search(a.query, vector=vector, space=space, kind=a.kind, k=a.k, mode=a.mode)
    for h in hits:
        g = h.generation
        if a.json:
            print(json.dumps(h.to_dict(), sort_keys=True))
            continue
        shown = " ".join(g.text.split())[:60] if g.kind == "text" else g.text
        print(
            f"{g.id:>6}  {h.score:.4f}  {g.kind:<6} {g.run:<16} {g.sha256[:12]}  "
            f"{store.file_path(g.sha256, g.suffix)}  {shown}"
        )
    if not hits and not a.json:
        print("no results", file=sys.stderr)
    return 0
