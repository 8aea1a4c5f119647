"""QoE beacons from the headless player: every ``interval_s`` wall seconds and once at the
end, the session's totals so far go to an edge's ``POST /beacon`` (schema:
:mod:`abrstack.beacons`).

A beacon never holds the session back and never fails it: sends run beside the session with
a short deadline; an endpoint that says it takes no beacons (404, 405, 501, 503: an origin, or
an edge without ``--redis``) or refuses one (4xx) turns beacons off for the session, with one
``beacon_off`` event in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from abrstack.beacons import MAX_ERROR_CHARS

if TYPE_CHECKING:
    from player_sim.session import SessionCore

SEND_DEADLINE_S = 2.0
"""Longest a beacon may take; the final one holds the session's end at most this long."""
MIN_INTERVAL_S = 0.5
MAX_INTERVAL_S = 3600.0
_BAD = re.compile(r"[^A-Za-z0-9._:@+-]")
_LEAD = re.compile(r"^[^A-Za-z0-9]+")


def default_beacon_url(manifest_url: str) -> str:
    """Where ``abr play`` sends beacons without ``--beacon``: ``/beacon`` on the server it
    plays from (an edge with ``--redis`` takes them; anything else turns them off)."""
    u = urlsplit(manifest_url)
    return f"{u.scheme}://{u.netloc}/beacon"


def name_field(text: str, limit: int, fallback: str = "unknown") -> str:
    """``text`` as a beacon name field (letters, digits, ``._:@+-``; at most ``limit``)."""
    out = _LEAD.sub("", _BAD.sub("_", text))[:limit]
    return out or fallback


def title_of_url(url: str) -> str:
    """The title a manifest URL plays: ``/media/<title>/...``, else the manifest's folder."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if "media" in parts[:-1]:
        return name_field(parts[parts.index("media") + 1], 128)
    return name_field(parts[-2] if len(parts) >= 2 else "unknown", 128)


def last_via(via: str | None) -> str | None:
    """The pseudonym of the last hop a ``Via`` names (RFC 9110 §7.6.3): the edge nearest the
    player, the one that served it."""
    if not via:
        return None
    parts = via.split(",")[-1].split("(", 1)[0].split()
    return parts[1] if len(parts) >= 2 else None


def beacon_fields(core: SessionCore | None, *, session_id: str, title: str, abr: str,
                  protocol: str, edge: str, seq: int, retries: int, error: str | None,
                  final: bool) -> dict[str, Any]:
    """A beacon from the session core's state (pure)."""
    play = core.play if core is not None else None
    records = core.records if core is not None else []
    played = 0.0
    if play is not None and play.startup_s is not None:
        played = max(0.0, play.now_s - play.start_s - play.startup_s - play.stall_total_s)
    out: dict[str, Any] = {
        "session_id": name_field(session_id, 64), "title": title, "abr": name_field(abr, 32),
        "protocol": protocol, "edge": name_field(edge, 128), "seq": seq,
        "bitrate_bps": round(records[-1].bitrate_kbps * 1000) if records else 0,
        "buffer_s": round(play.buffer_s, 3) if play is not None else 0.0,
        "stalls": play.stalls if play is not None else 0,
        "stall_s": round(play.stall_total_s, 3) if play is not None else 0.0,
        "startup_s": round(play.startup_s, 3) if play is not None and play.startup_s is not None
        else None,
        "switches": sum(1 for a, b in zip(records, records[1:], strict=False) if a.level != b.level),
        "errors": retries + (1 if error else 0),
        "played_s": round(played, 3), "final": final,
    }
    if error:
        out["error"] = error[:MAX_ERROR_CHARS]
    return out


class BeaconSender:
    """Sends one session's beacons (``start()``, then ``await close(...)`` at the end)."""

    def __init__(self, url: str, interval_s: float, make: Callable[[bool], dict[str, Any]],
                 event: Callable[..., None], verify: Any = True) -> None:
        self.url = url
        self.interval_s = interval_s
        self.make = make
        """Builds the next beacon; the argument is ``final``."""
        self.event = event
        self.sent = 0
        self.failed = 0
        self.off = False
        self._client = httpx.AsyncClient(verify=verify, timeout=SEND_DEADLINE_S, trust_env=False)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._every())

    async def _every(self) -> None:
        while not self.off:
            await asyncio.sleep(self.interval_s)
            await self.send(final=False)

    async def send(self, final: bool) -> None:
        if self.off:
            return
        body = json.dumps(self.make(final), separators=(",", ":"))
        try:
            async with asyncio.timeout(SEND_DEADLINE_S):
                r = await self._client.post(self.url, content=body,
                                            headers={"content-type": "application/json"})
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            self.failed += 1
            if self.failed == 1:
                self.event("beacon_failed", url=self.url, reason=f"{type(exc).__name__}: {exc}"[:200])
            return
        if 200 <= r.status_code < 300:
            self.sent += 1
            return
        self.off = True
        self.event("beacon_off", url=self.url, status=r.status_code,
                   reason=r.text.strip().splitlines()[0][:200] if r.text.strip() else "")

    async def close(self) -> None:
        """Stop the periodic sends and send the final beacon (at most SEND_DEADLINE_S)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.send(final=True)
        finally:
            await self._client.aclose()
