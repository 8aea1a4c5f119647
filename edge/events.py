"""The edge's event consumer: a replaced or deleted title's objects leave the cache at once
(segments are `immutable` for a year, so a stale copy would otherwise outlive the title).

Each edge node is its own consumer group on `titles`, so that every edge sees every event."""

from __future__ import annotations

import asyncio
import logging
import os

from abrstack.bus import Consumer, Event, Handler, MalformedEvent, SeenIds, connect
from abrstack.events import TITLES, title_of
from edge.store import TieredStore

log = logging.getLogger(__name__)


def purge_targets(title: str) -> list[tuple[str, bool]]:
    """What a replaced/deleted title drops: (target, is_prefix), in the origin's URL space."""
    return [(f"/media/{title}/", True), (f"/titles/{title}", False), (f"/play/{title}", False)]


class TitlePurger:
    """A bus handler: purges the store on `title.replaced` / `title.deleted`. Idempotent
    (a purge twice is a purge once; duplicates are skipped by event id)."""

    def __init__(self, store: TieredStore) -> None:
        self.store = store
        self.seen = SeenIds()
        self.purged = 0
        """Objects purged so far."""

    async def __call__(self, event: Event) -> None:
        try:
            title = title_of(event)
        except MalformedEvent as e:
            log.warning("edge: ignoring titles event %s: %s", event.id, e)
            return
        if event.type == "title.published" or not self.seen.first_time(event.id):
            return
        for target, prefix in purge_targets(title):
            self.purged += await asyncio.to_thread(self.store.purge, target, prefix)


class _Both:
    """Purge first, then fill: a replaced title's old objects go before its new ones come."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = handlers

    async def __call__(self, event: Event) -> None:
        for h in self.handlers:
            await h(event)


async def consume_titles(url: str, store: TieredStore, edge_name: str,
                         filler: Handler | None = None) -> None:
    """Run this edge's `titles` consumer (group `edge-<name>`, new events only on first start)
    until cancelled; ``filler`` (proactive fill) sees each event after the purger."""
    client = connect(url)
    consumer = Consumer(client, TITLES, f"edge-{edge_name}", f"{edge_name}-{os.getpid()}",
                        visibility_s=10.0, block_s=1.0)
    try:
        while True:
            try:
                await consumer.ensure_group("$")
                break
            except Exception as e:  # Redis away at start: keep serving, try again
                log.warning("edge: event bus at %s not reachable (%s); retrying", url, e)
                await asyncio.sleep(1.0)
        purger = TitlePurger(store)
        await consumer.run(purger if filler is None else _Both(purger, filler))
    finally:
        await client.aclose()
