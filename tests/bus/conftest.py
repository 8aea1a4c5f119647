"""A real redis-server per test (a private one on a free port; never a fake)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from abrstack.redisproc import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server
