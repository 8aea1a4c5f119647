"""Servers for the player's tests: aiohttp apps on 127.0.0.x (optionally TLS with a
self-signed certificate), run in a thread so that a session runs in the test body."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from edge.tls import ensure_self_signed


@contextmanager
def serving(app: web.Application, host: str = "127.0.0.1",
            tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve ``app`` on ``host`` and a free port until the block ends; yields the base URL."""
    ctx = None
    if tls is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*tls)
        ctx.set_alpn_protocols(["http/1.1"])
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, host, 0, ssl_context=ctx).start()
        port.append(runner.addresses[0][1])

    loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, name="player-test-server", daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://{host}:{port[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certfile, keyfile) of a self-signed certificate for localhost and 127.0.0.1 (as the edge's)."""
    return ensure_self_signed(tmp_path_factory.mktemp("tls"))
