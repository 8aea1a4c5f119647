"""The player against hostile or broken servers (real sockets on 127.0.0.x): failures that
no retry can fix end at once with a hint."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from abrstack.stack import free_port
from player_sim.player import PlayConfig, Session, SessionLog
from tests.play.conftest import serving


def run_session(**kw: Any) -> SessionLog:
    return asyncio.run(Session(PlayConfig(**kw)).run())


def plain_app(body: str = "#EXTM3U\n") -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


@pytest.mark.parametrize("protocol", ["h1", "h2"])
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2"])  # untrusted; trusted but for another name
def test_an_untrusted_certificate_fails_at_once_with_the_cacert_hint(self_signed: tuple[Path, Path],
                                                                     protocol: str, host: str) -> None:
    cafile = str(self_signed[0]) if host == "127.0.0.2" else None
    with serving(plain_app(), host, tls=self_signed) as url:
        t = time.monotonic()
        log = run_session(url=f"{url}/master.m3u8", protocol=protocol, cafile=cafile)
        took = time.monotonic() - t
    assert took < 3 and log.retries == 0
    assert log.error is not None and "not trusted" in log.error
    assert "pass --cacert FILE (e.g. the edge's cert.pem) or --insecure" in log.error
    assert host in log.error and ("mismatch" in log.error.lower()) == (host == "127.0.0.2")


@pytest.mark.parametrize("protocol, scheme", [("h1", "http"), ("h2", "https")])
def test_a_closed_port_fails_at_once_naming_host_and_port(protocol: str, scheme: str) -> None:
    port = free_port()
    t = time.monotonic()
    log = run_session(url=f"{scheme}://127.0.0.1:{port}/master.m3u8", protocol=protocol)
    assert time.monotonic() - t < 3 and log.retries == 0
    assert log.error is not None and f"nothing listens on 127.0.0.1:{port}" in log.error
