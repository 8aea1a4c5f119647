"""Fixtures for the fleet: the real origin app wrapped to count (and delay) the requests
that reach it, and a fleet of real processes (`abr fleet up`) that is always brought down."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from abrstack.fleet import Fleet, down, up
from abrstack.fleetspec import FleetSpec
from origin.server import make_app
from origin.testing import running_app
from tests.conftest import TinyTitle


@dataclass
class CountingOrigin:
    """What reached the origin, per path; ``delay_s`` holds each /media/ answer back."""

    url: str = ""
    fetches: dict[str, int] = field(default_factory=dict)
    delay_s: float = 0.0

    def count(self, path: str) -> int:
        return self.fetches.get(path, 0)

    def media_requests(self) -> int:
        return sum(v for k, v in self.fetches.items() if k.startswith("/media/"))


@pytest.fixture
def counting_origin(tiny_title: TinyTitle) -> Iterator[CountingOrigin]:
    state = CountingOrigin()
    app = make_app(tiny_title.media_dir)

    @web.middleware
    async def counting(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        state.fetches[request.path] = state.fetches.get(request.path, 0) + 1
        if state.delay_s and request.path.startswith("/media/"):
            await asyncio.sleep(state.delay_s)
        return await handler(request)

    app.middlewares.insert(0, counting)
    with running_app(app) as url:
        state.url = url
        yield state


@contextmanager
def running_fleet(spec: FleetSpec, state: Path, media: Path | None = None) -> Iterator[Fleet]:
    fleet = up(spec, state, media)
    try:
        yield fleet
    finally:
        down(state)
