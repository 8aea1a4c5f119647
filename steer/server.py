"""The steering service over HTTP (aiohttp): steering manifests, steered manifests, the 302
router, /healthz, /metrics and /edges.

URL space (``S`` is the service's public URL):

- ``S/media/…``, ``S/play/…``, ``S/static/…``, ``S/titles…``: **redirect routing** for any
  player (VLC, ffmpeg, curl): 302 to the same path on the title's edge, so one URL plays
  anywhere; the edge then serves everything (relative URIs resolve there).
- ``S/steered/media/<title>/<file>.m3u8|.mpd``: the title's master playlist or MPD, fetched
  from its first edge that answers and rewritten with content steering
  (:mod:`steer.manifests`), one session id in its SERVER-URI; ``S/steered/play/<title>`` is
  the player page (fetched the same way), whose relative URLs then stay under
  ``S/steered/``; anything else under ``S/steered/`` is a 302 like the above.
- ``S/steering/hls/<title>?session=…&_HLS_pathway=…&_HLS_throughput=…`` and
  ``S/steering/dash/<title>?session=…&_DASH_pathway=…&_DASH_throughput=…``: the steering
  manifests (JSON, ``Cache-Control: no-store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from steer.core import Steerer
from steer.errors import SteerError
from steer.health import HealthView, follow_health
from steer.manifests import (
    MAX_MANIFEST_BYTES,
    Pathway,
    clone_for,
    parse_pathways,
    parse_throughput,
    steer_hls_master,
    steer_mpd,
    steering_manifest,
)

log = logging.getLogger("abrstack.steer")

TITLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
FETCH_TIMEOUT_S = 2.0
"""Per edge tried: a manifest from an edge that hangs is asked of the next one after this."""
CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Location, Content-Length"}


@dataclass(frozen=True)
class SteerConfig:
    """One steering service; built once by the CLI."""

    edges: dict[str, str]
    """Edge name (its pathway id) -> base URL (``http://host:port``)."""
    public_url: str = ""
    """This service's URL as players reach it (SERVER-URI and RELOAD-URI are built on it);
    empty: the address it binds."""
    redis_url: str | None = None
    """Event bus for ``edge.health``; None: every edge counts as up (no health)."""
    ttl_s: int = 10
    """Steering manifest TTL: how often players ask again."""
    stale_s: float = 3.0
    """An edge not heard from for this long is out."""
    overload: float = 256.0
    """Requests in progress (summed over an edge's workers) past which an edge is overloaded."""
    c: float = 1.25
    """Load bound of the rendezvous placement (ceil(c × mean))."""
    policy: str = "hrw"
    """``hrw`` or ``random`` (any edge that is up, as DNS round-robin)."""
    replicas: int = 1
    """Edges a title's sessions are spread over."""


class SteerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter("steer_decisions", "Answers, by kind and first edge",
                                 ["kind", "edge"], registry=r)
        self.moved = Counter("steer_moves", "Steering answers that moved a session off the "
                                            "pathway it reported", registry=r)
        self.edge_up = Gauge("steer_edge_up", "1 while the edge heart-beats", ["edge"], registry=r)
        self.edge_active = Gauge("steer_edge_active_requests", "Requests in progress at the edge "
                                 "(its last heartbeats)", ["edge"], registry=r)
        self.edge_hit = Gauge("steer_edge_hit_ratio", "The edge's hit ratio (last heartbeats)",
                              ["edge"], registry=r)
        self.sessions = Gauge("steer_sessions", "Steered sessions seen within the window",
                              registry=r)


def make_app(cfg: SteerConfig, steerer: Steerer | None = None) -> web.Application:
    health = HealthView(list(cfg.edges), stale_s=cfg.stale_s, overload=cfg.overload,
                        static=cfg.redis_url is None)
    st = steerer or Steerer(cfg.edges, health, c=cfg.c, window_s=3 * cfg.ttl_s,
                            policy=cfg.policy, replicas=cfg.replicas)
    app = web.Application(middlewares=[_errors])
    app["cfg"], app["steerer"], app["metrics"] = cfg, st, SteerMetrics()
    app["public_url"] = cfg.public_url
    r = app.router
    r.add_get("/healthz", _healthz)
    r.add_get("/metrics", _metrics)
    r.add_get("/edges", _edges)
    r.add_get("/steering/{kind}/{title}", _steering)
    r.add_get("/steered/media/{title}/{file}", _steered_manifest)
    r.add_get("/steered/play/{title}", _steered_page)
    r.add_get("/steered/{tail:.*}", _redirect)
    r.add_get("/{tail:(media|play|static|titles).*}", _redirect)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def _start(app: web.Application) -> None:
    app["client"] = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S, sock_connect=1.0),
        auto_decompress=True)
    cfg: SteerConfig = app["cfg"]
    if cfg.redis_url:
        app["health_task"] = asyncio.ensure_future(follow_health(cfg.redis_url, app["steerer"].health))


async def _stop(app: web.Application) -> None:
    task = app.get("health_task")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await app["client"].close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except SteerError as e:
        resp = web.Response(status=400, text=f"{e}\n")
    except web.HTTPException as e:
        e.headers.update(CORS)
        raise
    resp.headers.update(CORS)
    return resp


def _now() -> float:
    return asyncio.get_running_loop().time()


def _title(request: web.Request) -> str:
    title = request.match_info["title"]
    if not TITLE.fullmatch(title):
        raise web.HTTPNotFound(text=f"no such title {title[:80]!r}\n")
    return title


def _pathways(st: Steerer, order: list[str]) -> list[Pathway]:
    return [Pathway(n, st.edges[n]) for n in order]


async def _from_edges(app: web.Application, order: list[str], path_qs: str) -> tuple[str, str, int]:
    """(body, edge, status) of `path_qs` from the first edge in `order` that answers."""
    st: Steerer = app["steerer"]
    last = "no edge is up"
    for name in order:
        try:
            async with app["client"].get(st.edges[name] + path_qs) as resp:
                body = await resp.content.read(MAX_MANIFEST_BYTES + 1)
                if len(body) > MAX_MANIFEST_BYTES:
                    raise web.HTTPBadGateway(text=f"{path_qs} from {name} is over {MAX_MANIFEST_BYTES} bytes\n")
                if resp.status >= 500:
                    last = f"{name} answered {resp.status}"
                    continue
                return body.decode("utf-8", "replace"), name, resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            last = f"{name}: {type(e).__name__} {e}"
    raise web.HTTPBadGateway(text=f"cannot fetch {path_qs} from any edge ({last})\n")


async def _steered_manifest(request: web.Request) -> web.StreamResponse:
    app, title, file = request.app, _title(request), request.match_info["file"]
    if not file.endswith((".m3u8", ".mpd")):
        return await _redirect(request)
    st: Steerer = app["steerer"]
    kind = "dash" if file.endswith(".mpd") else "hls"
    now = _now()
    order = st.priority(title, now)
    if not order:
        raise web.HTTPServiceUnavailable(text="no edge is up\n")
    path = f"/media/{title}/{file}"
    body, _edge, status = await _from_edges(app, order, path)
    if status != 200:
        return web.Response(status=status, text=body[:2000], content_type="text/plain")
    if kind == "hls" and "#EXT-X-STREAM-INF" not in body:
        return await _redirect(request)      # a media playlist: the edge serves it
    sid, order = st.open_session(title, kind, now)
    server_uri = f"{app['public_url']}/steering/{kind}/{quote(title)}?session={sid}"
    if kind == "hls":
        text = steer_hls_master(body, path, _pathways(st, order), server_uri, order[0])
        ctype = "application/vnd.apple.mpegurl"
    else:
        text = steer_mpd(body, path, _pathways(st, order), server_uri, order[0])
        ctype = "application/dash+xml"
    app["metrics"].decisions.labels(f"{kind}-manifest", order[0]).inc()
    return web.Response(text=text, content_type=ctype, headers={"Cache-Control": "no-store"})


async def _steering(request: web.Request) -> web.StreamResponse:
    kind, title = request.match_info["kind"], _title(request)
    if kind not in ("hls", "dash"):
        raise web.HTTPNotFound(text="steering manifests are /steering/hls/<title> or /steering/dash/<title>\n")
    st: Steerer = request.app["steerer"]
    cfg: SteerConfig = request.app["cfg"]
    q = request.query
    prefix = f"_{kind.upper()}_"
    reported = parse_pathways(kind, q.get(prefix + "pathway"))
    throughput = parse_throughput(kind, q.get(prefix + "throughput"))
    sid = q.get("session")
    if sid is not None and not re.fullmatch(r"[0-9a-f]{1,32}", sid):
        raise SteerError(f"bad session id {sid[:40]!r}")
    order, session = st.steer(title, sid, kind, reported, throughput, _now())
    if not order:
        raise web.HTTPServiceUnavailable(text="no edge is up\n", headers={"Retry-After": "1"})
    clones = []
    if session is not None:
        known = _pathways(st, list(session.pathways))
        for name in order:
            if name not in session.pathways:
                c = clone_for(known, Pathway(name, st.edges[name]), hls=kind == "hls")
                if c is not None:
                    clones.append(c)
        cloned = {c["ID"] for c in clones}
        order = [n for n in order if n in session.pathways or n in cloned]
    reload_uri = f"{request.app['public_url']}/steering/{kind}/{quote(title)}" + (f"?session={sid}" if sid else "")
    m = request.app["metrics"]
    m.decisions.labels(f"{kind}-steering", order[0] if order else "-").inc()
    if reported and order and reported[0] != order[0]:
        m.moved.inc()
    doc = steering_manifest(kind, order, cfg.ttl_s, reload_uri, clones)
    return web.Response(text=json.dumps(doc), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def _steered_page(request: web.Request) -> web.StreamResponse:
    title = _title(request)
    st: Steerer = request.app["steerer"]
    order = st.priority(title, _now())
    qs = f"?{request.query_string}" if request.query_string else ""
    body, _edge, status = await _from_edges(request.app, order, f"/play/{quote(title)}{qs}")
    return web.Response(status=status, text=body, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


async def _redirect(request: web.Request) -> web.StreamResponse:
    """302 to the same path (without ``/steered``) on the title's edge (or any, for paths of no title)."""
    st: Steerer = request.app["steerer"]
    path = request.raw_path
    if path.startswith("/steered/"):
        path = path[len("/steered"):]
    parts = path.split("?", 1)[0].split("/")
    title = parts[2] if len(parts) > 2 and parts[1] in ("media", "play") else path.split("?", 1)[0]
    client = request.remote or "-"
    edge = st.route(title, client, _now())
    if edge is None:
        raise web.HTTPServiceUnavailable(text="no edge is up\n", headers={"Retry-After": "1"})
    request.app["metrics"].decisions.labels("redirect", edge).inc()
    raise web.HTTPFound(st.edges[edge] + path, headers={"Cache-Control": "no-store", **CORS})


async def _healthz(request: web.Request) -> web.Response:
    st: Steerer = request.app["steerer"]
    up = st.up(_now())
    return web.json_response({"ok": bool(up), "edges_up": up}, status=200 if up else 503)


async def _edges(request: web.Request) -> web.Response:
    st: Steerer = request.app["steerer"]
    now = _now()
    snap = st.health.snapshot(now)
    return web.json_response({"edges": {n: {"url": st.edges[n], **snap[n]} for n in st.edges},
                              "sessions": len(st.sessions)})


async def _metrics(request: web.Request) -> web.Response:
    st: Steerer = request.app["steerer"]
    m: SteerMetrics = request.app["metrics"]
    now = _now()
    for name, s in st.health.snapshot(now).items():
        m.edge_up.labels(name).set(1 if s["up"] else 0)
        m.edge_active.labels(name).set(float(s.get("active", 0.0)))
        m.edge_hit.labels(name).set(float(s.get("hit_ratio", 0.0)))
    m.sessions.set(len(st.sessions))
    return web.Response(body=generate_latest(m.registry),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def run(cfg: SteerConfig, host: str, port: int) -> int:
    """Serve until SIGINT or SIGTERM; prints one banner line with the URL (port 0: any free one)."""
    return asyncio.run(_serve(cfg, host, port))


async def _serve(cfg: SteerConfig, host: str, port: int) -> int:
    import signal

    runner = web.AppRunner(make_app(cfg), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        url = f"http://{host}:{bound}"
        if not cfg.public_url:
            runner.app["public_url"] = url
        print(f"abr steer: serving {url} (public {runner.app['public_url']}); edges "
              + ", ".join(f"{n}={u}" for n, u in cfg.edges.items())
              + f"; health from {'edge.health on ' + cfg.redis_url if cfg.redis_url else 'nothing (every edge up)'}",
              flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
