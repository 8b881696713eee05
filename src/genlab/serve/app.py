"""The REST API and web page of `genlab serve` (FastAPI; the `serve` extra).

Endpoints (all under /api need `Authorization: Bearer TOKEN` when the server has a token):
  GET  /                      the web page (plain HTML and JavaScript)
  GET  /api/info              version, whether a token is required, limits
  GET  /api/runs              the runs in the runs folder, with each family's sampling options
  POST /api/runs/{run}/generate   samples: a streamed text, or one file of the run's data kind
                              (a PNG grid of images, a WAV, ...); recorded in the store
  GET  /api/search            hybrid / keyword / vector search of the store
  GET  /api/history           stored generations, newest first
  GET  /api/files/{name}      a stored generation's file (named by its sha256)
  GET  /docs, /openapi.json   the OpenAPI page and schema

Requests are bounded (body bytes, prompt length, samples per request, generation seconds,
concurrent generations). Errors are JSON: {"error": "...", "status": N}. Nothing here changes
process-global state per request: torch's thread count is set once when the server starts, and
the model cache and each model's use are guarded by locks.
"""

# (no `from __future__ import annotations`: FastAPI reads the annotations of the endpoints,
# whose request model is defined inside create_app, at run time)
import dataclasses
import hmac
import json
import queue
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, UsageError

MEDIA = {
    ".png": "image/png",
    ".wav": "audio/wav",
    ".txt": "text/plain; charset=utf-8",
    ".mid": "audio/midi",
    ".csv": "text/csv; charset=utf-8",
    ".npy": "application/octet-stream",
    ".json": "application/json",
}
FILE_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]{1,5}$")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_body: int = 64 * 1024
    """Bytes of a request body."""
    max_prompt: int = 2000
    """Characters of any text option (a prompt)."""
    max_n: int = 64
    """Samples per request."""
    max_seconds: float = 60.0
    """Seconds of generation per request (a streamed text stops there)."""
    max_busy: int = 2
    """Generations at once; more wait up to `max_wait` seconds, then get 503."""
    max_wait: float = 30.0
    max_k: int = 100
    """Search results per request."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Models:
    """Loaded models by run name: loaded once (under a lock), the `size` most recent kept;
    each with its own lock, so one model generates for one request at a time."""

    def __init__(self, runs: Path, device: str, size: int = 4) -> None:
        self.runs, self.device, self.size = runs, device, size
        self.lock = threading.Lock()
        self.cache: OrderedDict[str, tuple[Any, threading.Lock]] = OrderedDict()

    def run_dir(self, name: str) -> Path:
        from genlab.io.manifest import manifest_file

        path = self.runs / name
        if "/" in name or name.startswith(".") or manifest_file(path) is None:
            raise ApiError(404, f"no run '{name}' in {self.runs}; GET /api/runs lists them")
        return path

    def get(self, name: str) -> tuple[Any, threading.Lock]:
        path = self.run_dir(name)
        with self.lock:
            if name in self.cache:
                self.cache.move_to_end(name)
                return self.cache[name]
            from genlab.run import load

            try:
                model = load(path, device=self.device)
            except GenlabError as e:
                raise ApiError(409, f"run '{name}' cannot be loaded: {e}") from None
            self.cache[name] = (model, threading.Lock())
            while len(self.cache) > self.size:
                self.cache.popitem(last=False)
            return self.cache[name]


def run_list(runs: Path) -> list[dict[str, Any]]:
    """The runs in a folder with their family, data kind and sampling options."""
    from genlab.data.kinds import kind_of
    from genlab.io.manifest import manifest_file, read_manifest
    from genlab.models.base import Streams
    from genlab.registry import get_family

    out = []
    if not runs.is_dir():
        return out
    for path in sorted(p for p in runs.iterdir() if p.is_dir()):
        if manifest_file(path) is None or not (path / "checkpoints").is_dir():
            continue
        try:
            meta = read_manifest(path)
            cls = get_family(meta["family"])[0]
            kind = kind_of(meta["data"]["kind"])
        except (GenlabError, KeyError, TypeError):
            continue
        out.append(
            {
                "name": path.name,
                "family": cls.family,
                "description": cls.description,
                "kind": kind.name,
                "streams": kind.streams and issubclass(cls, Streams),
                "media_type": MEDIA.get(kind.default_suffix(), "application/octet-stream"),
                "options": option_fields(cls.SampleOptions),
            }
        )
    return out


def option_fields(cls: type) -> list[dict[str, Any]]:
    """A family's sampling options: name, type and default of each field."""
    from typing import get_type_hints

    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = None if f.default is dataclasses.MISSING else f.default
        tp = hints[f.name]
        shown = tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")
        out.append({"name": f.name, "type": shown, "default": default})
    return out


class Bounds:
    """ASGI middleware that checks, before any /api endpoint but /api/info runs, the bearer
    token and the body's size and encoding (a pure ASGI class: Starlette's `@app.middleware`
    wrapper costs more per request than a search does)."""

    def __init__(self, app: Any, *, token: str | None, max_body: int) -> None:
        self.app, self.token, self.max_body = app, token, max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path == "/api/info":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        problem = self._refusal(headers)
        if problem is None and scope["method"] == "POST":
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                if len(body) > self.max_body:
                    problem = (413, f"request bodies are limited to {self.max_body} bytes")
                    break
                if not message.get("more_body", False):
                    break
            if problem is None:
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError:
                    problem = (400, "the request body is not UTF-8 text; send JSON in UTF-8")
            if problem is None:
                return await self.app(scope, _replay(bytes(body), receive), send)
        if problem is not None:
            from fastapi.responses import JSONResponse

            status, message = problem
            reply = JSONResponse({"error": message, "status": status}, status_code=status)
            return await reply(scope, receive, send)
        return await self.app(scope, receive, send)

    def _refusal(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if self.token is not None:
            given = headers.get(b"authorization", b"")
            if not given.startswith(b"Bearer "):
                return 401, "this server needs 'Authorization: Bearer TOKEN'"
            if not hmac.compare_digest(given[7:], self.token.encode()):
                return 401, "wrong token"
        size = headers.get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > self.max_body):
            return 413, f"request bodies are limited to {self.max_body} bytes"
        return None


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI `receive` that gives the already-read body once, then defers to `receive`."""
    given = False

    async def again() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def create_app(
    runs: str | Path = "runs",
    store: str | None = None,
    *,
    token: str | None = None,
    device: str = "cpu",
    limits: Limits | None = None,
    judge_steps: int = 2000,
) -> Any:
    """The FastAPI application over the runs in `runs` and the store at `store`.

    `judge_steps`: the frozen cnn judge whose features embed stored images (as `genlab sample
    --feature-steps`)."""
    try:
        from fastapi import FastAPI, Query, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
        from pydantic import BaseModel, Field
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise UsageError(
            "genlab serve needs the serve extra: pip install 'genlab[serve]'"
        ) from None

    from genlab._version import __version__
    from genlab.serve.page import PAGE
    from genlab.store import open_store

    lim = limits or Limits()
    runs_dir = Path(runs)
    models = Models(runs_dir, device)
    busy = threading.BoundedSemaphore(lim.max_busy)
    state: dict[str, Any] = {}
    state_lock = threading.Lock()

    def the_store() -> Any:
        with state_lock:
            if "store" not in state:
                state["store"] = open_store(store)
            return state["store"]

    app = FastAPI(
        title="genlab",
        version=__version__,
        description="Generate from genlab runs and search the store of what they generated.",
    )

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return error(e.status, e.message)

    @app.exception_handler(GenlabError)
    async def _genlab_error(request: Request, e: GenlabError) -> JSONResponse:
        return error(400, str(e))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        return error(500, f"internal error ({type(e).__name__}: {e}); see the server's log")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = []
        for err in e.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query"))
            if err.get("type") == "json_invalid":
                return error(400, "the request body is not JSON text in UTF-8; send JSON")
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        return error(422, "; ".join(problems) or "invalid request")

    app.add_middleware(Bounds, token=token, max_body=lim.max_body)

    class GenerateRequest(BaseModel):
        n: int = Field(1, ge=1, le=lim.max_n, description="number of samples")
        seed: int = Field(0, ge=0, description="sampling seed")
        options: dict[str, Any] = Field(
            default_factory=dict, description="the family's sampling options (GET /api/runs)"
        )
        store: bool = Field(True, description="record the samples in the store")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """Version, whether a bearer token is required, and the request limits."""
        return {
            "version": __version__,
            "token_required": token is not None,
            "limits": dataclasses.asdict(lim),
        }

    @app.get("/api/runs")
    def list_runs() -> list[dict[str, Any]]:
        """The runs this server generates from."""
        return run_list(runs_dir)

    @app.post("/api/runs/{run}/generate")
    def generate(run: str, req: GenerateRequest) -> Any:
        """Samples from `run`: text streams as it is generated (text/plain); other kinds come
        as one file of the run's data kind (images: a PNG grid; audio: WAV)."""
        import torch

        from genlab.config import from_dict
        from genlab.data.kinds import kind_of
        from genlab.models.base import Streams

        for key, value in req.options.items():
            if isinstance(value, str) and len(value) > lim.max_prompt:
                raise ApiError(413, f"option '{key}' is limited to {lim.max_prompt} characters")
        model, model_lock = models.get(run)
        cls = type(model)
        options = dataclasses.asdict(from_dict(cls.SampleOptions, req.options))
        kind = kind_of(model.info)
        if not busy.acquire(timeout=lim.max_wait):
            raise ApiError(503, "the server is busy generating; try again shortly")
        handed = False  # to the stream's worker, which releases the slot when it ends
        try:
            if kind.streams and isinstance(model, Streams):
                response = _stream(model, model_lock, run, req, options)
                handed = True
                return response
            deadline = time.monotonic() + lim.max_seconds
            with model_lock, torch.inference_mode():
                g = torch.Generator(device=models.device).manual_seed(req.seed)
                samples = model.sample(req.n, generator=g, **options)
            if time.monotonic() > deadline:
                raise ApiError(504, f"generation took longer than {lim.max_seconds:.0f} s")
            stored = _keep(model, run, samples, req, options) if req.store else []
        finally:
            if not handed:
                busy.release()
        from genlab.store.record import sample_bytes

        content, suffix = sample_bytes(kind, samples, model.info)
        headers = {"X-Genlab-Stored": json.dumps([a.to_dict() for a in stored])}
        return Response(content, media_type=MEDIA.get(suffix, "application/octet-stream"),
                        headers=headers)  # fmt: skip

    def _keep(model: Any, run: str, samples: Any, req: Any, options: dict) -> list[Any]:
        from genlab.store.record import record, register_run

        st = the_store()
        name = register_run(st, models.run_dir(run))
        prompt = options.get("prompt") if isinstance(options.get("prompt"), str) else None
        return record(st, model, name, samples, seed=req.seed, options=options,
                      prompt=prompt or None, judge_steps=judge_steps)  # fmt: skip

    def _stream(model: Any, model_lock: Any, run: str, req: Any, options: dict) -> Any:
        """Generate in a worker thread; hand its pieces to the response as they come."""
        import torch

        pieces: queue.Queue[str | None] = queue.Queue()
        deadline = time.monotonic() + lim.max_seconds

        class TooLong(Exception):
            pass

        def emit(piece: str) -> None:
            if time.monotonic() > deadline:
                raise TooLong
            pieces.put(piece)

        def work() -> None:
            texts = []
            try:
                with model_lock, torch.inference_mode():
                    g = torch.Generator(device=models.device).manual_seed(req.seed)
                    for i in range(req.n):
                        if i:
                            pieces.put("\n" + "-" * 40 + "\n")
                        texts.append(model.stream(emit, generator=g, **options))
                if req.store:
                    _keep(model, run, texts, req, options)
            except TooLong:
                pieces.put(f"\n[stopped: generation is limited to {lim.max_seconds:.0f} s]")
            except Exception as e:  # the response has started: say it in the text
                pieces.put(f"\n[error: {e}]")
            finally:
                busy.release()
                pieces.put(None)

        threading.Thread(target=work, daemon=True).start()

        def body() -> Any:
            while (piece := pieces.get()) is not None:
                yield piece.encode()

        return StreamingResponse(body(), media_type="text/plain; charset=utf-8")

    def _search_hits(hits: list[Any]) -> list[dict[str, Any]]:
        return [{**h.to_dict(), "url": f"/api/files/{h.generation.name}"} for h in hits]

    @app.get("/api/search")
    def search(
        q: str = Query("", max_length=lim.max_prompt, description="words to look for"),
        kind: str | None = Query(None, description="only this data kind (image, text, ...)"),
        k: int = Query(10, ge=1, le=lim.max_k, description="number of results"),
        mode: str = Query("hybrid", pattern="^(hybrid|keyword|vector)$"),
        like: str | None = Query(None, description="id or sha256 prefix of a stored item"),
    ) -> list[dict[str, Any]]:
        """Hybrid (keyword + vector, fused by reciprocal rank), keyword or vector search."""
        from genlab.store import embed

        st = the_store()
        vector = space = None
        if like:
            found = st.vector_of(st.get(like).id)
            if found is None:
                raise ApiError(400, f"generation {like} has no embedding; search it by words")
            space, vector = found
        elif mode != "keyword" and kind in (None, "text") and q.strip() and embed.text_available():
            enc = embed.text_encoder()
            vector, space = enc.query(q), enc.space
        hits = _search_hits(st.search(q, vector=vector, space=space, kind=kind, k=k, mode=mode))
        # serialized here: FastAPI's validation of the declared list of dicts costs more than
        # the search
        return Response(json.dumps(hits), media_type="application/json")  # type: ignore[return-value]

    @app.get("/api/history")
    def history(
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
        run: str | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """Stored generations, newest first."""
        st = the_store()
        return [
            {**g.to_dict(), "url": f"/api/files/{g.name}"}
            for g in st.history(limit=limit, offset=offset, run=run, kind=kind)
        ]

    @app.get("/api/files/{name}")
    def file(name: str) -> Any:
        """A stored generation's file, by its content address (sha256 + suffix)."""
        if not FILE_NAME.match(name):
            raise ApiError(400, "a file name is 64 hex digits and a suffix, as in search results")
        st = the_store()
        path = st.file_path(name.split(".")[0], "." + name.split(".")[1])
        if not path.exists():
            raise ApiError(404, f"no stored file {name}")
        return Response(path.read_bytes(), media_type=MEDIA.get(path.suffix, "text/plain"))

    app.state.store = the_store
    return app


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    runs: str | Path = "runs",
    store: str | None = None,
    token: str | None = None,
    device: str = "cpu",
) -> None:
    """Run the server until Ctrl-C (this process is the server's: it sets torch's threads)."""
    try:
        import uvicorn
    except ImportError:
        raise UsageError(
            "genlab serve needs the serve extra: pip install 'genlab[serve]'"
        ) from None
    import os

    import torch

    torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 2)))
    # Searches run concurrently, one thread each; a multi-threaded BLAS product per search only
    # adds spinning threads that take the cores from the others (see bench/serve_load.py).
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    app = create_app(runs, store, token=token, device=device)
    where = f"http://{host}:{port}"
    print(f"genlab serve: {where}/ (page), {where}/docs (API); Ctrl-C stops", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
