"""`genlab serve` through HTTP on 127.0.0.1: runs, generation (PNG, streamed text), search,
history, and 4xx JSON errors for bad requests after which the server keeps serving."""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import pytest

from conftest import FEATURE_STEPS, tiny_overrides

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx", reason="the serve extra is not installed")

TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A uvicorn server in a thread of this process, on a free local port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def make_runs(root, tiny_text):
    import genlab
    from genlab.judges import judge

    genlab.train("vae", "digits", root / "vae", steps=4, quiet=True,
                 overrides=tiny_overrides("vae"))  # fmt: skip
    genlab.train("gpt", str(tiny_text), root / "gpt", steps=4, quiet=True,
                 overrides=tiny_overrides("gpt"))  # fmt: skip
    judge("digits", steps=FEATURE_STEPS)
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_text):
    from genlab.serve.app import create_app
    from genlab.store import embed

    root = make_runs(tmp_path_factory.mktemp("runs"), tiny_text)
    embed.image_judge("digits", FEATURE_STEPS)  # the judge the store's image embeddings use
    app = create_app(root, str(root / "store"), token=TOKEN, judge_steps=FEATURE_STEPS)
    server = Server(app)
    client = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
    )
    yield client
    client.close()
    server.stop()


def test_info_runs_and_openapi(served):
    info = served.get("/api/info").json()
    assert info["token_required"] is True
    runs = {r["name"]: r for r in served.get("/api/runs").json()}
    assert set(runs) == {"gpt", "vae"}
    assert runs["gpt"]["streams"] and runs["vae"]["media_type"] == "image/png"
    assert "temperature" in {o["name"] for o in runs["gpt"]["options"]}
    spec = served.get("/openapi.json").json()
    assert "/api/runs/{run}/generate" in spec["paths"] and "/api/search" in spec["paths"]
    assert served.get("/docs").status_code == 200


def test_generate_png_and_stream_text_then_search(served):
    from PIL import Image

    r = served.post("/api/runs/vae/generate", json={"n": 4, "seed": 1})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).format == "PNG"
    stored = json.loads(r.headers["x-genlab-stored"])
    assert len(stored) == 4 and stored[0]["status"] == "new"
    again = served.post("/api/runs/vae/generate", json={"n": 4, "seed": 1})
    dup = json.loads(again.headers["x-genlab-stored"])
    assert {d["status"] for d in dup} <= {"duplicate", "near-duplicate"}

    body = {"n": 1, "seed": 2, "options": {"prompt": "ROMEO:", "max_new_tokens": 10}}
    with served.stream("POST", "/api/runs/gpt/generate", json=body) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/plain")
        chunks = list(s.iter_text())
    text = "".join(chunks)
    assert text.startswith("ROMEO:") and len(chunks) > 1  # streamed piece by piece
    hits = served.get("/api/search", params={"q": "ROMEO", "kind": "text"}).json()
    assert hits and hits[0]["text"] == text.strip() and hits[0]["prompt"] == "ROMEO:"
    f = served.get(hits[0]["url"])
    assert f.status_code == 200 and f.text.strip() == text.strip()
    history = served.get("/api/history", params={"limit": 3}).json()
    assert history[0]["id"] == hits[0]["id"]
    images = served.get("/api/search", params={"q": "vae", "kind": "image", "k": 10}).json()
    assert images and {h["kind"] for h in images} == {"image"}


@pytest.mark.parametrize(
    ("method", "path", "kw", "status", "says"),
    [
        ("post", "/api/runs/nope/generate", {"json": {}}, 404, "no run 'nope'"),
        ("post", "/api/runs/vae/generate", {"json": {"n": -3}}, 422, "n: "),
        ("post", "/api/runs/vae/generate", {"json": {"n": 10**6}}, 422, "n: "),
        (
            "post",
            "/api/runs/gpt/generate",
            {"json": {"options": {"prompt": "x" * 5000}}},
            413,
            "limited to",
        ),  # fmt: skip
        ("post", "/api/runs/gpt/generate", {"content": b"x" * 100_000}, 413, "limited to"),
        (
            "post",
            "/api/runs/vae/generate",
            {"content": b'{"n": "\xff\xfe"}', "headers": {"content-type": "application/json"}},
            400,
            "UTF-8",
        ),  # fmt: skip
        ("post", "/api/runs/gpt/generate", {"json": {"options": {"top_q": 1}}}, 400, "top_q"),
        ("get", "/api/search", {"params": {"q": "x", "k": 0}}, 422, "k: "),
        ("get", "/api/search", {"params": {"q": "x", "mode": "magic"}}, 422, "mode: "),
        ("get", "/api/files/../../etc/passwd", {}, 404, ""),
        ("get", "/api/files/abc.png", {}, 400, "64 hex digits"),
    ],
)
def test_bad_requests_get_json_4xx_and_the_server_keeps_serving(
    served, method, path, kw, status, says
):
    r = getattr(served, method)(path, **kw)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert says in r.json()["error"]
    assert served.get("/api/runs").status_code == 200


def test_missing_or_wrong_token(served):
    base = str(served.base_url)
    assert httpx.get(base + "/api/runs").status_code == 401
    wrong = httpx.get(base + "/api/runs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong token"
    assert httpx.get(base + "/api/info").status_code == 200  # the page asks whether to ask
    assert served.get("/api/runs").status_code == 200


def test_concurrent_generations_do_not_interfere(served):
    # the same request from 6 threads at once: identical images, each stored once
    results = []

    def go() -> None:
        results.append(served.post("/api/runs/vae/generate", json={"n": 2, "seed": 7}))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results)
    assert len({r.content for r in results}) == 1
    statuses = [s["status"] for r in results for s in json.loads(r.headers["x-genlab-stored"])]
    assert statuses.count("new") <= 2 and len(statuses) == 12
