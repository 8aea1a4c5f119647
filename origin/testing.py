"""A real origin on 127.0.0.1 in a background thread, for tests (ours and the edge's).

    with running_origin(media_dir) as base_url:   # e.g. "http://127.0.0.1:41234"
        httpx.get(base_url + "/titles")

The server runs its own event loop in a daemon thread, so synchronous clients (httpx,
http.client, ffmpeg, a browser) can be used from the test body.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web


@contextmanager
def running_app(app: web.Application, host: str = "127.0.0.1") -> Iterator[str]:
    """Serves ``app`` on ``host``, a free port, until the block ends; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    started = threading.Event()
    port: list[int] = []
    failure: list[BaseException] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port.append(runner.addresses[0][1])

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="origin-test-server", daemon=True)
    thread.start()
    started.wait(timeout=30)
    if failure:
        raise failure[0]
    try:
        yield f"http://{host}:{port[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


@contextmanager
def running_origin(media_dir: Path, **kwargs: Any) -> Iterator[str]:
    """Serves :func:`origin.server.make_app` (``media_dir``, ``**kwargs``); yields the base URL."""
    from origin.server import make_app

    with running_app(make_app(media_dir, **kwargs)) as base_url:
        yield base_url
