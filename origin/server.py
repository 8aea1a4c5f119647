"""The origin's aiohttp application: catalog, media files, player page, health and metrics.

URL space (contracts.md, kept stable for the edge):

=======================================  ==============================================
``GET /``                                HTML list of titles with player links
``GET /titles``                          JSON catalog of published titles
``GET /titles/{name}``                   one catalog entry
``GET|HEAD /media/{name}/{path}``        manifests, title.json, init and media segments
``GET /play/{name}?player=hls|dash``     the player page
``GET /static/...``                      page assets; ``/static/vendor/`` = hls.js, dash.js
``GET /healthz``                         ``{"status": "ok"}``
``GET /metrics``                         Prometheus exposition of this app's registry
=======================================  ==============================================

Files: validators, conditional requests and ranges are decided by the pure rules of
:mod:`origin.http_rules` (aiohttp's ``FileResponse`` alone answers 416 to multi-range
requests, ignores entity-tag ``If-Range`` and compares ``If-Modified-Since`` against the
sub-second mtime). Bodies above :data:`SMALL_FILE_BYTES` go out through ``FileResponse``
(``sendfile``), which then sees only our normalised single ``Range``; small files
(manifests) are read into memory.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from origin import catalog, http_rules, media
from origin.metrics import OriginMetrics, make_metrics
from origin.player import PLAYERS, VENDOR_FILES, render_error_page, render_index, render_page

SMALL_FILE_BYTES: Final = 64 * 1024
"""Files up to this size are read into memory; larger ones are sent with sendfile."""

STATIC_DIR: Final = Path(__file__).parent / "static"
DEFAULT_NODE_MODULES: Final = Path(__file__).resolve().parent.parent / "node_modules"
"""node_modules of the project root (the parent of the origin package)."""


def find_node_modules(explicit: Path | None = None) -> Path:
    """Where hls.js and dash.js are: ``explicit``, else ``$ABR_NODE_MODULES``, else the
    project root's node_modules, else ``./node_modules`` if that one has them (an installed
    package has no project root). The project root's is returned when none has them, so
    the error page names it."""
    if explicit is not None:
        return Path(explicit)
    if os.environ.get("ABR_NODE_MODULES"):
        return Path(os.environ["ABR_NODE_MODULES"])
    for candidate in (DEFAULT_NODE_MODULES, Path.cwd() / "node_modules"):
        if (candidate / "hls.js").is_dir():
            return candidate
    return DEFAULT_NODE_MODULES


CORS_EXPOSED: Final = "Content-Length, Content-Range, Content-Type, ETag, Last-Modified, Age, Date"
CORS_REQUEST_HEADERS: Final = "Range, If-None-Match, If-Modified-Since, If-Range, Content-Type"
CORS_MAX_AGE_S: Final = 86_400

_CONDITIONAL_FIELDS: Final = (
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
)


@dataclass(frozen=True)
class OriginConfig:
    """Everything the app needs, built once (by the CLI or a test) and passed down."""

    media_dir: Path
    """The media root: one folder per title (contracts.md "Title layout")."""
    node_modules: Path
    """Where npm installed hls.js and dash.js."""


CONFIG: Final = web.AppKey("origin_config", OriginConfig)
METRICS: Final = web.AppKey("origin_metrics", OriginMetrics)


def make_app(
    media_dir: Path,
    *,
    node_modules: Path | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The origin application serving the titles in ``media_dir``.

    ``node_modules``: see :func:`find_node_modules`; ``registry`` defaults to a fresh
    Prometheus registry (exposed on ``/metrics``), so several apps can share a process.
    """
    config = OriginConfig(
        media_dir=Path(media_dir).resolve(),
        node_modules=find_node_modules(node_modules),
    )
    app = web.Application(middlewares=[_metrics_middleware, _cors_preflight_middleware])
    app[CONFIG] = config
    app[METRICS] = make_metrics(registry)
    app.on_response_prepare.append(_on_response_prepare)
    router = app.router
    router.add_get("/", _index, name="index")
    router.add_get("/titles", _titles, name="titles")
    router.add_get("/titles/{name}", _title, name="title")
    router.add_get("/media/{name}/{path:.*}", _media, name="media")
    router.add_get("/play/{name}", _play, name="play")
    router.add_get("/static/vendor/{file}", _vendor, name="vendor")
    router.add_get("/static/{file}", _static, name="static")
    router.add_get("/healthz", _healthz, name="healthz")
    router.add_get("/metrics", _metrics, name="metrics")
    return app


# --- middlewares and signals -------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Times the handler; requests and bytes are counted when headers go out."""
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        route = request.match_info.route.name or "unmatched"
        request.app[METRICS].observe_duration(route, time.perf_counter() - started)


@web.middleware
async def _cors_preflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers CORS preflights (Fetch standard §3.2.2) for every path."""
    if request.method == hdrs.METH_OPTIONS:
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": request.headers.get(
                    "Access-Control-Request-Headers", CORS_REQUEST_HEADERS
                ),
                "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
                "Allow": "GET, HEAD, OPTIONS",
            },
        )
    return await handler(request)


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Adds CORS headers and counts the answer; runs for every response, errors included."""
    metrics = request.app[METRICS]
    route = request.match_info.route.name or "unmatched"
    metrics.count(route, request.method, response.status, response.content_length)
    # Public content: any origin may read it; no credentials, so "*" is allowed.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
    response.headers["Timing-Allow-Origin"] = "*"  # Resource Timing: sizes and phases


# --- catalog, health, metrics ---------------------------------------------------------------


def _json(data: Any, status: int = 200, cache_control: str = media.SHORT) -> web.Response:
    return web.Response(
        text=json.dumps(data, indent=1) + "\n",
        status=status,
        content_type="application/json",
        headers={"Cache-Control": cache_control},
    )


def _not_found(message: str) -> web.Response:
    return _json({"error": message}, status=404, cache_control="no-cache")


async def _index(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return web.Response(
        text=render_index(catalog.scan(config.media_dir)),
        content_type="text/html",
        headers={"Cache-Control": "no-cache"},
    )


async def _titles(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return _json({"titles": catalog.scan(config.media_dir)})


async def _title(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = request.match_info["name"]
    try:
        meta = catalog.load_title(config.media_dir, name)
    except catalog.TitleError:
        return _not_found(f"no title {name!r}")
    return _json(catalog.summarize(meta, name))


async def _healthz(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    if not config.media_dir.is_dir():
        return _json(
            {"status": "error", "error": "media folder missing"}, 503, cache_control="no-cache"
        )
    return _json({"status": "ok"}, cache_control="no-cache")


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body, headers={"Cache-Control": "no-cache"})
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


# --- files ----------------------------------------------------------------------------------


async def _media(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    name = request.match_info["name"]
    try:
        segments = media.split_media_path(request.match_info["path"])
    except media.BadPath as exc:
        return _json({"error": str(exc)}, status=400, cache_control="no-cache")
    except LookupError:
        return _not_found("not found")
    kind = media.media_kind(segments)
    if kind is None:
        return _not_found("not found")
    try:
        path = catalog.locate(config.media_dir, name, segments)
    except LookupError:
        return _not_found("not found")
    return await send_file(request, path, kind.content_type, kind.cache_control)


async def send_file(
    request: web.Request,
    path: str | Path,
    content_type: str,
    cache_control: str,
    *,
    retry: bool = True,
) -> web.StreamResponse:
    """Answers a GET or HEAD of one file with validators, preconditions and ranges.

    A file that vanishes (a title deleted or replaced while a client plays it) is a 404;
    a file already being sent keeps its open descriptor until done.
    """
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return _not_found("not found")
    except OSError:
        return _json({"error": "unreadable"}, status=403, cache_control="no-cache")
    if not stat.S_ISREG(st.st_mode):
        return _not_found("not found")  # no directory listings, no devices
    facts = http_rules.FileFacts(size_bytes=st.st_size, mtime_ns=st.st_mtime_ns)
    lowered = {
        field: request.headers[field] for field in _CONDITIONAL_FIELDS if field in request.headers
    }
    decision = http_rules.decide(request.method, lowered, facts)
    headers = {
        "ETag": facts.etag,
        "Last-Modified": facts.last_modified,
        "Cache-Control": cache_control,
        "Accept-Ranges": "bytes",
    }
    if decision.status == http_rules.NOT_MODIFIED:
        return web.Response(status=304, headers=headers)  # RFC 9110 §15.4.5: validators kept
    if decision.status == http_rules.PRECONDITION_FAILED:
        return web.Response(status=412, headers={"Cache-Control": "no-cache"})
    if decision.status == http_rules.RANGE_NOT_SATISFIABLE:
        headers["Content-Range"] = f"bytes */{facts.size_bytes}"  # RFC 9110 §15.5.17
        headers["Cache-Control"] = "no-cache"
        return web.Response(status=416, headers=headers)
    headers["Content-Type"] = content_type
    rng = decision.byte_range
    if rng is not None:
        headers["Content-Range"] = rng.content_range(facts.size_bytes)
    length = rng.length_bytes if rng is not None else facts.size_bytes
    if request.method == "HEAD":
        head = web.StreamResponse(status=decision.status, headers=headers)
        head.content_length = length
        return head
    if facts.size_bytes <= SMALL_FILE_BYTES:
        try:
            with open(path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return _not_found("not found")
        if len(data) != facts.size_bytes and retry:  # replaced between stat and read
            return await send_file(request, path, content_type, cache_control, retry=False)
        if len(data) != facts.size_bytes:
            return _json({"error": "file is changing"}, status=503, cache_control="no-cache")
        body = data[rng.first : rng.last + 1] if rng is not None else data
        return web.Response(status=decision.status, headers=headers, body=body)
    # Large file: FileResponse does the sendfile (see _SingleRangeFileResponse).
    del headers["ETag"], headers["Last-Modified"]  # FileResponse sets both from its fstat
    headers.pop("Content-Range", None)
    plain: CIMultiDict[str] = CIMultiDict(
        (key, value)
        for key, value in request.headers.items()
        if key.lower() not in _CONDITIONAL_FIELDS and key.lower() != "accept-encoding"
    )
    if rng is not None:
        plain["Range"] = f"bytes={rng.first}-{rng.last}"
    return _SingleRangeFileResponse(path, plain, headers=headers)


class _SingleRangeFileResponse(web.FileResponse):
    """A FileResponse that sees a copy of the request without validators and with at most
    the one range already decided by :func:`origin.http_rules.decide`.

    FileResponse re-applies its own precondition and range logic; with such a request that
    logic is a no-op, and only its sendfile path and its fstat-based headers remain.
    """

    def __init__(self, path: str | Path, request_headers: CIMultiDict[str], **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._request_headers = request_headers

    @property
    def last_modified(self) -> datetime.datetime | None:
        return web.FileResponse.last_modified.fget(self)  # type: ignore[attr-defined]

    @last_modified.setter
    def last_modified(self, value: Any) -> None:
        # aiohttp rounds a float mtime up; RFC 9110 §8.8.2.1 and our validators round down.
        if isinstance(value, float):
            value = int(value)
        web.FileResponse.last_modified.fset(self, value)  # type: ignore[attr-defined]

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await web.StreamResponse.prepare(self, request)
        return await super().prepare(request.clone(headers=self._request_headers))


async def _vendor(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    file = request.match_info["file"]
    relative = VENDOR_FILES.get(file)
    if relative is None:
        return _not_found("not found")
    path = config.node_modules / relative
    if not path.is_file():
        return _missing_node_modules(config)
    return await send_file(request, path, "text/javascript; charset=utf-8", "public, max-age=3600")


_STATIC_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


async def _static(request: web.Request) -> web.StreamResponse:
    file = request.match_info["file"]
    content_type = _STATIC_TYPES.get(os.path.splitext(file)[1])
    if file.startswith(".") or "/" in file or content_type is None:
        return _not_found("not found")
    return await send_file(request, STATIC_DIR / file, content_type, "no-cache")


def _missing_node_modules(config: OriginConfig) -> web.Response:
    detail = (
        f"The browser players (hls.js, dash.js) are not installed in {config.node_modules}. "
        f"Run `npm install --no-audit --no-fund` (or `make setup`) in "
        f"{config.node_modules.parent}, or start the origin with --node-modules PATH."
    )
    return web.Response(
        status=503,
        text=render_error_page(503, "Player libraries not installed", detail),
        content_type="text/html",
        headers={"Cache-Control": "no-cache"},
    )


# --- player page ----------------------------------------------------------------------------


async def _play(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = request.match_info["name"]
    player = request.query.get("player", "hls")
    if player not in PLAYERS:
        return web.Response(
            status=400,
            text=render_error_page(
                400, "Unknown player", f"player={player!r}: use one of {', '.join(PLAYERS)}."
            ),
            content_type="text/html",
        )
    try:
        meta = catalog.load_title(config.media_dir, name)
    except catalog.TitleError:
        return web.Response(
            status=404,
            text=render_error_page(404, "No such title", f"There is no title named {name!r}."),
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )
    if not all((config.node_modules / path).is_file() for path in VENDOR_FILES.values()):
        return _missing_node_modules(config)
    manifests = {k: v for k, v in (meta.get("manifests") or {}).items() if isinstance(v, str)}
    page = render_page(name, player, manifests, catalog.summarize(meta, name)["renditions"])
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})
