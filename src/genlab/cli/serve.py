"""`genlab serve`: the REST API and web page (genlab.serve) on one local port."""

from __future__ import annotations

import argparse
from typing import Any

from genlab.cli.parser import common
from genlab.cli.store import add_store_path

HELP = "serve a REST API and a web page to generate from runs and search the store"

EPILOG = """examples:
  genlab serve                                  # http://127.0.0.1:8000 (runs/, runs/store)
  genlab serve --runs runs --port 8080 --token s3cret
  then open http://127.0.0.1:8000/ (the page) or http://127.0.0.1:8000/docs (the API)
"""


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "serve",
        help=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument(
        "--runs", default="runs", metavar="DIR", help="folder of run directories (default runs)"
    )
    add_store_path(s)
    s.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' on every API request (default: none; "
        "also $GENLAB_SERVE_TOKEN)",
    )
    s.add_argument(
        "--device", default="cpu", help="where to generate: cpu (default), cuda or cuda:N"
    )


def run(a: argparse.Namespace) -> int:
    import os

    from genlab.serve.app import serve

    token = a.token or os.environ.get("GENLAB_SERVE_TOKEN") or None
    serve(host=a.host, port=a.port, runs=a.runs, store=a.store_path, token=token, device=a.device)
    return 0
