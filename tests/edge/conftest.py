"""Fixtures for the edge: a controllable stand-in origin and a running edge.

The stand-in origin is the outside world from the edge's point of view: the test sets
its objects, headers and validators, counts its fetches, makes it slow, failing, or
answer 304s, and stops it. The edge is the real one (granian + our HTTP/3 server, real sockets, port 0).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edge.app import EdgeApp, EdgeConfig
from edge.policy import PolicyConfig
from edge.server import BoundPorts, ServerConfig, serve
from edge.upstream import UpstreamConfig
from origin.testing import running_app


@dataclass
class Obj:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass
class FakeOrigin:
    """State of the stand-in origin (read and changed by tests)."""

    objects: dict[str, Obj] = field(default_factory=dict)
    fetches: dict[str, int] = field(default_factory=dict)
    conditional: dict[str, int] = field(default_factory=dict)
    first_byte_delay_s: float = 0.0
    chunk_bytes: int = 64 * 1024
    chunk_delay_s: float = 0.0
    fail_status: int | None = None
    gate: asyncio.Event | None = None
    """If set, the origin sends the first chunk and then waits for this event."""
    loop: asyncio.AbstractEventLoop | None = None
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    active: int = 0
    """Responses being sent now (an edge that hung up ends its one)."""

    def count(self, path: str) -> int:
        return self.fetches.get(path, 0)

    def open_gate(self) -> None:
        assert self.loop is not None and self.gate is not None
        self.loop.call_soon_threadsafe(self.gate.set)

    def make_gate(self) -> None:
        assert self.loop is not None
        done = threading.Event()

        def mk() -> None:
            self.gate = asyncio.Event()
            done.set()

        self.loop.call_soon_threadsafe(mk)
        done.wait(5)

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.active += 1
            try:
                return await respond(request)
            finally:
                self.active -= 1

        async def respond(request: web.Request) -> web.StreamResponse:
            self.loop = asyncio.get_running_loop()
            path = request.path
            self.fetches[path] = self.fetches.get(path, 0) + 1
            self.seen_headers.append(dict(request.headers))
            if self.first_byte_delay_s:
                await asyncio.sleep(self.first_byte_delay_s)
            if self.fail_status is not None:
                return web.Response(status=self.fail_status, text="origin failure\n")
            obj = self.objects.get(path)
            if obj is None:
                return web.Response(status=404, text="not found\n")
            etag = obj.headers.get("ETag")
            if etag and request.headers.get("If-None-Match") == etag:
                self.conditional[path] = self.conditional.get(path, 0) + 1
                keep = {k: v for k, v in obj.headers.items()
                        if k in ("ETag", "Cache-Control", "Last-Modified")}
                return web.Response(status=304, headers=keep)
            resp = web.StreamResponse(status=obj.status, headers=obj.headers)
            resp.content_length = len(obj.body)
            await resp.prepare(request)
            for i in range(0, len(obj.body), self.chunk_bytes):
                await resp.write(obj.body[i:i + self.chunk_bytes])
                if i == 0 and self.gate is not None:
                    await self.gate.wait()
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            await resp.write_eof()
            return resp

        async def capture_loop(app: web.Application) -> None:
            self.loop = asyncio.get_running_loop()

        app = web.Application()
        app.on_startup.append(capture_loop)
        app.router.add_route("GET", "/{tail:.*}", handler)
        return app


def gated_stampede(state: FakeOrigin, path: str, bases: list[str],
                   n: int) -> list[tuple[int, bytes, str, list[str]]]:
    """``n`` concurrent GETs of ``path``, spread round-robin over ``bases``, while the origin
    holds the body after its first chunk (call ``state.make_gate()`` first): every client
    must have its first bytes with one origin fetch made; then the gate opens. Returns each
    response's status, body, ``X-Cache`` and ``Via`` fields."""

    async def run() -> list[tuple[int, bytes, str, list[str]]]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2 * n)) as s:
            async def one(base: str) -> tuple[aiohttp.ClientResponse, bytes]:
                r = await s.get(base + path)
                return r, await r.content.readexactly(1000)

            heads = await asyncio.wait_for(asyncio.gather(
                *[one(bases[i % len(bases)]) for i in range(n)]), 20)
            assert state.count(path) == 1  # first bytes everywhere, the origin still held
            state.open_gate()
            out = []
            for r, head in heads:
                out.append((r.status, head + await r.read(), r.headers.get("X-Cache", ""),
                            r.headers.getall("Via", [])))
                r.release()
            return out

    return asyncio.run(run())


@contextmanager
def fake_origin() -> Iterator[tuple[FakeOrigin, str]]:
    state = FakeOrigin()
    with running_app(state.app()) as url:
        yield state, url


@dataclass
class RunningEdge:
    app: EdgeApp
    ports: BoundPorts
    cache_dir: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports.http_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.ports.port}"

    @property
    def certfile(self) -> Path:
        return self.cache_dir / "tls" / "edge-cert.pem"


@contextmanager
def running_edge(origins: list[str], cache_dir: Path, **kw: Any) -> Iterator[RunningEdge]:
    """Run a real edge (granian for TCP, our h3 server for QUIC) in a thread on free ports until the block ends."""
    up_kw = {k: kw.pop(k) for k in list(kw) if k in UpstreamConfig.__dataclass_fields__}
    pol_kw = {k: kw.pop(k) for k in list(kw) if k in PolicyConfig.__dataclass_fields__}
    srv_kw = {k: kw.pop(k) for k in list(kw) if k in ServerConfig.__dataclass_fields__}
    app_cfg = EdgeConfig(
        upstream=UpstreamConfig(tuple(origins), **{"connect_timeout_s": 1.0,
                                                   "read_timeout_s": 5.0, **up_kw}),
        cache_dir=cache_dir, policy=PolicyConfig(**pol_kw), **kw)
    srv_kw.setdefault("extra", {"graceful_timeout": 0.2})
    cfg = ServerConfig(app=app_cfg, **{"port": 0, "http_port": 0, "access_log": None, **srv_kw})
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    got: list[Any] = []
    failure: list[BaseException] = []

    def on_ready(ports: BoundPorts, app: EdgeApp) -> None:
        got.extend([ports, app])

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            task = asyncio.ensure_future(serve(cfg, shutdown=stop.wait, ready=on_ready))
            while not got and not task.done():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            ready.set()
            await task

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True, name="edge-test")
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    try:
        yield RunningEdge(got[1], got[0], cache_dir)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)


@pytest.fixture
def origin() -> Iterator[tuple[FakeOrigin, str]]:
    with fake_origin() as o:
        yield o


@pytest.fixture
def edge_factory(tmp_path: Path) -> Callable[..., Any]:
    def make(origins: list[str], **kw: Any) -> Any:
        return running_edge(origins, kw.pop("cache_dir", tmp_path / "cache"), **kw)

    return make
