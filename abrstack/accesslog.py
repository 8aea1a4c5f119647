"""JSON access logs, one line per request, for every service (edge, origin, job service).

Each line is a JSON object with at least ``ts`` (Unix seconds), ``method``, ``path``,
``status``, ``bytes`` and ``duration_ms``; services add their own fields (the edge its
``protocol`` and ``cache``). Where the lines go is chosen once per process:
``"-"`` standard error, a file path (appended), or None (off).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any


def setup(logger_name: str, target: str | None) -> logging.Logger:
    """Send ``logger_name``'s records, as bare lines, to ``target``."""
    logger = logging.getLogger(logger_name)
    logger.propagate = False
    logger.handlers.clear()
    if target is None:
        logger.setLevel(logging.WARNING)
        return logger
    handler: logging.Handler = (logging.StreamHandler(sys.stderr) if target == "-"
                                else logging.FileHandler(target))
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger


def write(logger: logging.Logger, record: dict[str, Any]) -> None:
    """One JSON line (compact separators), if the logger is on."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(json.dumps({"ts": round(time.time(), 3), **record}, separators=(",", ":")))


def aiohttp_middleware(logger_name: str) -> Callable[..., Awaitable[Any]]:
    """An aiohttp middleware writing one line per request to ``logger_name``."""
    from aiohttp import web

    logger = logging.getLogger(logger_name)

    @web.middleware
    async def access_log(request: web.Request, handler: Any) -> web.StreamResponse:
        t0 = time.monotonic()
        status, size = 500, 0
        try:
            response: web.StreamResponse = await handler(request)
            status = response.status
            size = response.body_length or response.content_length or 0
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            write(logger, {
                "method": request.method, "path": request.path,
                "query": request.query_string, "status": status, "bytes": size,
                "duration_ms": round((time.monotonic() - t0) * 1000, 3),
                "client": request.remote,
            })

    return access_log
