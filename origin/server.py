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

Files are sent by :func:`origin.files.send_file`: validators, preconditions and ranges
from the pure rules of :mod:`origin.http_rules`, bodies above 64 KiB with sendfile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from abrstack import accesslog
from origin import catalog, media
from origin.events import LiveCatalog
from origin.files import send_file
from origin.metrics import OriginMetrics, make_metrics
from origin.player import PLAYERS, VENDOR_FILES, render_error_page, render_index, render_page

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


@dataclass(frozen=True)
class OriginConfig:
    """Everything the app needs, built once (by the CLI or a test) and passed down."""

    media_dir: Path
    """The media root: one folder per title (contracts.md "Title layout")."""
    node_modules: Path
    """Where npm installed hls.js and dash.js."""


CONFIG: Final = web.AppKey("origin_config", OriginConfig)
METRICS: Final = web.AppKey("origin_metrics", OriginMetrics)
LIVE: Final = web.AppKey("origin_live_catalog", LiveCatalog)
FOLLOWER: Final = web.AppKey("origin_titles_follower", asyncio.Task[None])


def make_app(
    media_dir: Path,
    *,
    node_modules: Path | None = None,
    registry: CollectorRegistry | None = None,
    redis_url: str | None = None,
) -> web.Application:
    """The origin application serving the titles in ``media_dir``.

    ``node_modules``: see :func:`find_node_modules`; ``registry`` defaults to a fresh
    Prometheus registry (exposed on ``/metrics``), so several apps can share a process.
    ``redis_url``: keep the catalog in memory, updated from `titles` events (origin/events.py).
    """
    config = OriginConfig(
        media_dir=Path(media_dir).resolve(),
        node_modules=find_node_modules(node_modules),
    )
    app = web.Application(middlewares=[accesslog.aiohttp_middleware("abrstack.origin.access"),
                                       _metrics_middleware, _cors_preflight_middleware])
    app[CONFIG] = config
    app[METRICS] = make_metrics(registry)
    app.on_response_prepare.append(_on_response_prepare)
    if redis_url:
        _follow_titles(app, config.media_dir, redis_url)
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


def _follow_titles(app: web.Application, media_dir: Path, redis_url: str) -> None:
    live = app[LIVE] = LiveCatalog(media_dir)

    async def start(app: web.Application) -> None:
        app[FOLLOWER] = asyncio.create_task(live.follow(redis_url))

    async def stop(app: web.Application) -> None:
        app[FOLLOWER].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[FOLLOWER]
    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def _listing(app: web.Application) -> list[dict[str, Any]]:
    live = app.get(LIVE)
    return live.listing() if live is not None else catalog.scan(app[CONFIG].media_dir)


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
    return web.Response(
        text=render_index(_listing(request.app)),
        content_type="text/html",
        headers={"Cache-Control": "no-cache"},
    )


async def _titles(request: web.Request) -> web.Response:
    return _json({"titles": _listing(request.app)})


async def _title(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = request.match_info["name"]
    live = request.app.get(LIVE)
    if live is not None:
        entry = live.get(name)
        return _json(entry) if entry is not None else _not_found(f"no title {name!r}")
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
