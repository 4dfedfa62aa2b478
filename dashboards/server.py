"""The dashboards' web server: Starlette routes over the SQL layer, static pages from the package.

Security, in one place:
- Files: only ``DIR/clips/<clip_id>.mp4`` (id checked against a fixed alphabet, path
  resolved with symlinks and required to stay inside the data folder) and the
  package's own static files (a fixed table, no path joining).
- Identity: on a loopback address an annotator names themself (``X-Annotator``);
  bound to any other address every API and media request needs an annotator's token
  (``Authorization: Bearer`` or the HttpOnly cookie ``POST /api/login`` sets).
- Requests: GET never changes state; every POST needs JSON and the ``X-Emoforge``
  header (a cross-site form cannot send either). On loopback the ``Host`` header must
  name loopback too (DNS rebinding).
- Responses: metadata travels as JSON and the pages insert it as text only; a strict
  Content-Security-Policy forbids inline script.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from emoforge.dashboards import index, queries
from emoforge.dashboards.corpus import corpus_stats
from emoforge.dashboards.db import Database, default_url
from emoforge.dashboards.export import export_decisions
from emoforge.dashboards.labels_json import labels_payload, mesh_payload
from emoforge.errors import UserError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_COOKIE = "emoforge_token"
CSRF_HEADER = "x-emoforge"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-resource-policy": "same-origin",
}
PAGES = {"/audit": "audit.html", "/corpus": "corpus.html", "/review": "review.html"}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


def static_files() -> dict[str, Path]:
    """The package's static files by name: the only names ``/static/`` can serve."""
    folder = resources.files("emoforge.dashboards") / "static"
    return {entry.name: Path(str(entry)) for entry in folder.iterdir()
            if entry.is_file() and Path(entry.name).suffix in STATIC_TYPES}


@dataclass
class Settings:
    data_dir: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    require_tokens: bool | None = None  # None: required exactly when not bound to loopback
    index_labels: bool = True  # read label statistics in a background thread
    export_debounce_s: float = 1.0


@dataclass
class _State:
    settings: Settings
    data_dir: Path
    db: Database
    require_tokens: bool
    static: dict[str, Path]
    exporter: "_Exporter"
    indexing: dict = field(default_factory=lambda: {"done": 0, "total": None, "running": False})
    stop: threading.Event = field(default_factory=threading.Event)


class _Exporter:
    """Rewrites ``DIR/decisions.parquet`` shortly after decisions change (and on shutdown)."""

    def __init__(self, db: Database, data_dir: Path, debounce_s: float):
        self.db, self.data_dir, self.debounce_s = db, data_dir, debounce_s
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="decisions-export", daemon=True)
        self.last: dict | None = None

    def start(self):
        self._thread.start()

    def mark_dirty(self):
        self._dirty.set()

    def export_now(self) -> dict:
        with self._lock:
            self._dirty.clear()
            path, rows = export_decisions(self.db, self.data_dir)
            self.last = {"path": path.name, "rows": rows, "at": queries.now_iso()}
            return self.last

    def _loop(self):
        while not self._stop.is_set():
            if self._dirty.wait(timeout=0.5) and not self._stop.wait(self.debounce_s):
                self.export_now()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        if self._dirty.is_set():
            self.export_now()


# -- request helpers ------------------------------------------------------------------------
class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _state(request: Request) -> _State:
    return request.app.state.dashboard


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(TOKEN_COOKIE)


def _annotator(request: Request, required: bool) -> str | None:
    """Who is asking: from a token (always honoured), else the self-named loopback annotator."""
    state = _state(request)
    token = _token(request)
    if token:
        name = queries.annotator_for_token(state.db, token)
        if name is None:
            raise _HttpError(401, "unknown or revoked token")
        return name
    if state.require_tokens:
        raise _HttpError(401, "this server needs an annotator token")
    name = request.headers.get("x-annotator") or request.query_params.get("annotator")
    if name:
        try:
            return queries.check_annotator(name)
        except UserError as exc:
            raise _HttpError(400, str(exc)) from None
    if required:
        raise _HttpError(400, "say who you are: the X-Annotator header names the annotator")
    return None


def _authorised(request: Request) -> None:
    """Reading needs a token too when the server is not on loopback."""
    state = _state(request)
    if state.require_tokens or _token(request):
        _annotator(request, required=True)


async def _json_body(request: Request) -> dict:
    if request.headers.get(CSRF_HEADER) != "1":
        raise _HttpError(403, "missing X-Emoforge header")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise _HttpError(415, "send application/json")
    body = await request.body()
    if len(body) > 64_000:
        raise _HttpError(413, "request too large")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise _HttpError(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise _HttpError(400, "body must be a JSON object")
    return data


def _json_bytes(payload: bytes) -> Response:
    return Response(payload, media_type="application/json", headers={"cache-control": "no-store"})


def _json(data, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"cache-control": "no-store"})


def _clip_id(request: Request) -> str:
    clip_id = request.path_params["clip_id"]
    if not index.valid_clip_id(clip_id):
        raise _HttpError(404, "no such clip")
    return clip_id


# -- pages and files ------------------------------------------------------------------------
async def home(request: Request):
    return RedirectResponse("/audit", status_code=303)


async def page(request: Request):
    name = PAGES[request.url.path]
    return FileResponse(_state(request).static[name], media_type="text/html", headers={"cache-control": "no-cache"})


async def static(request: Request):
    path = _state(request).static.get(request.path_params["name"])
    if path is None:
        raise _HttpError(404, "not found")
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers={"cache-control": "no-cache"})


def media(request: Request):
    _authorised(request)
    name = request.path_params["name"]
    if not name.endswith(".mp4"):
        raise _HttpError(404, "not found")
    path = index.clip_file(_state(request).data_dir, name[: -len(".mp4")], ".mp4")
    if path is None:
        raise _HttpError(404, "not found")
    return FileResponse(path, media_type="video/mp4")


# -- API: reading ---------------------------------------------------------------------------
def session(request: Request):
    state = _state(request)
    try:
        annotator = _annotator(request, required=False)
    except _HttpError:
        annotator = None
    return _json({
        "annotator": annotator,
        "tokens_required": state.require_tokens,
        "decisions": list(queries.DECISIONS),
        "reject_reasons": list(queries.REJECT_REASONS),
        "qa_fraction": queries.QA_FRACTION,
        "queues": list(queries.QUEUES),
        "indexing": state.indexing,
        "data_dir_name": state.data_dir.name,
    })


def clips(request: Request):
    _authorised(request)
    annotator = _annotator(request, required=False)
    return _json(queries.list_clips(_state(request).db, dict(request.query_params), annotator))


def facets(request: Request):
    _authorised(request)
    annotator = _annotator(request, required=False)
    db = _state(request).db
    return _json({**queries.facets(db), "queues": queries.queue_counts(db, annotator)})


def clip(request: Request):
    _authorised(request)
    detail = queries.clip_detail(_state(request).db, _clip_id(request))
    if detail is None:
        raise _HttpError(404, "no such clip")
    return _json(detail)


def clip_labels(request: Request):
    _authorised(request)
    state = _state(request)
    clip_id = _clip_id(request)
    npz = index.clip_file(state.data_dir, clip_id, ".labels.npz")
    if npz is None:
        raise _HttpError(404, "this clip has no labels file")
    return _json_bytes(labels_payload(npz, index.clip_file(state.data_dir, clip_id, ".json"), state.data_dir))


def clip_mesh(request: Request):
    _authorised(request)
    npz = index.clip_file(_state(request).data_dir, _clip_id(request), ".labels.npz")
    if npz is None:
        raise _HttpError(404, "this clip has no labels file")
    return _json_bytes(mesh_payload(npz))


def corpus(request: Request):
    _authorised(request)
    state = _state(request)
    return _json(corpus_stats(state.db, state.data_dir))


def review(request: Request):
    _authorised(request)
    db = _state(request).db
    return _json({
        "annotators": queries.annotator_table(db),
        "agreement": queries.agreement(db),
        "activity": queries.recent_activity(db),
        "export": _state(request).exporter.last,
    })


# -- API: changing state (POST only) ---------------------------------------------------------
async def login(request: Request):
    data = await _json_body(request)
    token = str(data.get("token") or "")
    name = queries.annotator_for_token(_state(request).db, token)
    if name is None:
        raise _HttpError(401, "unknown token")
    response = _json({"annotator": name})
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=30 * 24 * 3600)
    return response


async def logout(request: Request):
    await _json_body(request)
    response = _json({"annotator": None})
    response.delete_cookie(TOKEN_COOKIE)
    return response


async def decide(request: Request):
    data = await _json_body(request)
    annotator = _annotator(request, required=True)
    clip_id = _clip_id(request)
    state = _state(request)
    from starlette.concurrency import run_in_threadpool

    decision = await run_in_threadpool(
        queries.record_decision, state.db, clip_id, annotator, data.get("decision"), data.get("reason"),
        data.get("note"), data.get("request_id"),
    )
    state.exporter.mark_dirty()
    return _json(decision, status=201)


async def note(request: Request):
    data = await _json_body(request)
    annotator = _annotator(request, required=True)
    state = _state(request)
    from starlette.concurrency import run_in_threadpool

    created = await run_in_threadpool(queries.add_note, state.db, _clip_id(request), annotator, data.get("text"), data.get("frame"))
    return _json(created, status=201)


async def export(request: Request):
    await _json_body(request)
    _annotator(request, required=True)
    from starlette.concurrency import run_in_threadpool

    return _json(await run_in_threadpool(_state(request).exporter.export_now))


# -- the app -------------------------------------------------------------------------------
class _Guard:
    """ASGI middleware: loopback Host check, error mapping, security headers on every response."""

    def __init__(self, app, allowed_hosts: set[str] | None):
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.allowed_hosts is not None:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            if host not in self.allowed_hosts:
                return await _send_error(scope, send, 421, "unexpected Host header")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _send_error(scope, send, status: int, message: str):
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _http_error(request: Request, exc: _HttpError):
    return _json({"error": exc.message}, status=exc.status)


async def _user_error(request: Request, exc: UserError):
    return _json({"error": str(exc)}, status=400)


async def _lookup_error(request: Request, exc: LookupError):
    return _json({"error": "no such clip"}, status=404)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def open_database(data_dir: Path, db_url: str | None) -> Database:
    db = Database(db_url or default_url(data_dir))
    db.create_schema()
    return db


def create_app(settings: Settings) -> Starlette:
    data_dir = Path(settings.data_dir).resolve()
    if not data_dir.is_dir():
        raise UserError(f"no data folder at {settings.data_dir}")
    db = open_database(data_dir, settings.db_url)
    require_tokens = settings.require_tokens if settings.require_tokens is not None else not is_loopback(settings.host)
    allowed_hosts = None
    if is_loopback(settings.host):
        names = {"127.0.0.1", "localhost", "[::1]", settings.host}
        allowed_hosts = {f"{name}:{settings.port}" for name in names} | (names if settings.port == 80 else set())
    state = _State(settings, data_dir, db, require_tokens, static_files(),
                   _Exporter(db, data_dir, settings.export_debounce_s))
    index.sync_manifest(db, data_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state.exporter.start()
        worker = None
        if settings.index_labels:
            worker = threading.Thread(target=_index_labels, args=(state,), name="label-index", daemon=True)
            worker.start()
        try:
            yield
        finally:
            state.stop.set()
            if worker is not None:
                worker.join(timeout=10)
            state.exporter.close()
            db.close()

    routes = [
        Route("/", home),
        *[Route(path, page) for path in PAGES],
        Route("/static/{name}", static),
        Route("/media/{name}", media),
        Route("/api/session", session),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/clips", clips),
        Route("/api/facets", facets),
        Route("/api/clips/{clip_id}", clip),
        Route("/api/clips/{clip_id}/labels", clip_labels),
        Route("/api/clips/{clip_id}/mesh", clip_mesh),
        Route("/api/clips/{clip_id}/decisions", decide, methods=["POST"]),
        Route("/api/clips/{clip_id}/notes", note, methods=["POST"]),
        Route("/api/corpus", corpus),
        Route("/api/review", review),
        Route("/api/export", export, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={_HttpError: _http_error, UserError: _user_error, LookupError: _lookup_error},
    )
    app.state.dashboard = state
    app.add_middleware(_Guard, allowed_hosts=allowed_hosts)
    return app


def _index_labels(state: _State) -> None:
    state.indexing["running"] = True

    def progress(done, total):
        state.indexing.update(done=done, total=total)

    try:
        index.sync_label_stats(state.db, state.data_dir, stop=state.stop, progress=progress)
    finally:
        state.indexing["running"] = False
