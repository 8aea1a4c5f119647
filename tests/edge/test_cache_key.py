"""Cache busting: a query parameter the origin does not read makes neither a second stored
copy nor a second origin fetch, and is not sent upstream (README "Cache key")."""

from __future__ import annotations

from typing import Any

import httpx
from aiohttp import web

from origin.testing import running_app

SEG = "/media/t/360p/seg-00001.m4s"


def test_busting_params_share_one_copy_and_are_not_forwarded(edge_factory: Any) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.Response(body=b"x" * 1000, headers={"Cache-Control": "max-age=600"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    with running_app(app) as url, edge_factory([url], prefetch_k=0) as edge:
        caches = [httpx.get(f"{edge.http}{SEG}?bust={n}").headers["x-cache"] for n in range(5)]
        assert caches == ["MISS"] + ["HIT"] * 4
        assert seen == [SEG]
        # /play/ keys and forwards the one parameter the origin reads
        httpx.get(f"{edge.http}/play/t?player=dash&bust=1")
        assert httpx.get(f"{edge.http}/play/t?bust=2&player=dash").headers["x-cache"] == "HIT"
        assert httpx.get(f"{edge.http}/play/t?player=hls").headers["x-cache"] == "MISS"
        assert seen[1:] == ["/play/t?player=dash", "/play/t?player=hls"]
