"""The origin's catalog from `titles` events (`abr origin --redis URL`).

Without the bus, `GET /titles` scans the media folder on every request. With it, the catalog is
kept in memory: scanned once at start, then each `title.published` / `replaced` / `deleted`
event reloads (or drops) that one title's entry, so a listing costs no file system walk and a
title appears the moment the encoder announces it. Every origin worker process reads the topic
on its own (a `Tail`, no consumer group: each must see every event). A full rescan every
`rescan_s` catches titles that were copied in without an event. With Redis away the catalog
keeps serving what it has (the bus is never on the serving path) and rescans when it is back.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from abrstack.bus import MalformedEvent, Tail, connect
from abrstack.events import TITLES, title_of
from origin.catalog import TitleError, load_title, scan, summarize

log = logging.getLogger(__name__)


class LiveCatalog:
    """Catalog entries by title name, updated from events."""

    def __init__(self, media_dir: Path, media_prefix: str = "/media") -> None:
        self.media_dir, self.media_prefix = media_dir, media_prefix
        self.titles: dict[str, dict[str, Any]] = {}
        self.updates = 0
        """Events applied so far."""
        self.rescan()

    def rescan(self) -> None:
        self.titles = {t["name"]: t for t in scan(self.media_dir, self.media_prefix)}

    def refresh(self, name: str) -> None:
        """Reload one title's entry from its title.json (gone: dropped)."""
        try:
            self.titles[name] = summarize(load_title(self.media_dir, name), name, self.media_prefix)
        except TitleError:
            self.titles.pop(name, None)

    def listing(self) -> list[dict[str, Any]]:
        return [self.titles[name] for name in sorted(self.titles)]

    def get(self, name: str) -> dict[str, Any] | None:
        return self.titles.get(name)

    async def follow(self, url: str, rescan_s: float = 300.0) -> None:
        """Apply `titles` events from `url` until cancelled."""
        client = connect(url)
        tail = Tail(client, TITLES, block_s=1.0)
        loop = asyncio.get_running_loop()
        positioned = False
        next_rescan = loop.time() + rescan_s
        try:
            while True:
                try:
                    if not positioned:  # what happened before this point, the scan shows
                        await tail.start_at_end()
                        positioned = True
                        await asyncio.to_thread(self.rescan)
                    events = await tail.poll()
                except (RedisError, OSError) as e:
                    log.warning("origin: event bus at %s not reachable (%s); retrying", url, e)
                    positioned = False  # once back: from its end, after a rescan
                    await asyncio.sleep(1.0)
                    continue
                for event in events:
                    try:
                        name = title_of(event)
                    except MalformedEvent as e:
                        log.warning("origin: ignoring titles event %s: %s", event.id, e)
                        continue
                    await asyncio.to_thread(self.refresh, name)
                    self.updates += 1
                if loop.time() >= next_rescan:
                    await asyncio.to_thread(self.rescan)
                    next_rescan = loop.time() + rescan_s
        finally:
            await client.aclose()
