"""The edge's event consumer: a replaced or deleted title's objects leave the cache at once
(segments are `immutable` for a year, so a stale copy would otherwise outlive the title).

Each edge node is its own consumer group on `titles`, so that every edge sees every event."""

from __future__ import annotations

import asyncio
import logging

from abrstack.bus import Event, MalformedEvent, SeenIds
from abrstack.events import title_of
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
