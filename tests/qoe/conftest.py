"""Real parts for the QoE tests: a private redis-server, a real origin and real edges
(processes, as `abr` runs them), a tiny encoded title."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from abrstack.redisproc import RedisServer
from abrstack.stack import running_edge_process, running_origin_process


@dataclass(frozen=True)
class QoeStack:
    redis: RedisServer
    origin: str
    edge_http: str
    """An edge with --redis."""
    edge_https: str
    certfile: Path
    spki: str
    plain_edge: str
    """An edge without --redis."""


@pytest.fixture(scope="module")
def qoe_stack(tiny_title: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QoeStack]:
    work = tmp_path_factory.mktemp("qoe-stack")
    (work / "bus").mkdir()
    (work / "plain").mkdir()
    with RedisServer(work / "redis") as redis, \
            running_origin_process(tiny_title.media_dir, work) as (origin, _o), \
            running_edge_process(origin, work / "bus", "--redis", redis.url,
                                 "--via-name", "edge-a") as (http, https, cert, spki, _e), \
            running_edge_process(origin, work / "plain", "--via-name", "edge-p") as (plain, *_):
        yield QoeStack(redis, origin, http, https, cert, spki, plain)


def beacon(**changes: Any) -> dict[str, Any]:
    """A valid beacon, with `changes` applied (None removes a field)."""
    b: dict[str, Any] = {"session_id": "s1", "title": "tiny", "abr": "bola", "protocol": "h1",
                         "seq": 0, "bitrate_bps": 400_000, "buffer_s": 6.0, "stalls": 0,
                         "stall_s": 0.0, "startup_s": 0.4, "switches": 1, "errors": 0,
                         "played_s": 2.0, "final": False}
    for k, v in changes.items():
        if v is None:
            b.pop(k, None)
        else:
            b[k] = v
    return b
