"""Tell the bus about a title after its atomic rename (`abr encode --redis URL`).

The encode has already succeeded when this runs: a bus that stays down for `wait_s` costs a
warning, never the title. (The outbox of a one-shot process lives only as long as it does.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from abrstack.bus import Event, Publisher, connect
from abrstack.events import TITLES, title_event


def title_event_for(doc: dict[str, Any], replaced: bool) -> Event:
    """The `titles` event for a published title.json document."""
    version = doc.get("version")
    title = str(doc["title"])
    return title_event("title.replaced" if replaced else "title.published", title,
                       str(version) if version is not None else None,
                       [str(r.get("id")) for r in doc.get("renditions", [])],
                       [f"/media/{title}/master.m3u8", f"/media/{title}/manifest.mpd"])


def announce(url: str, doc: dict[str, Any], replaced: bool, wait_s: float = 5.0) -> bool:
    """Publish the event, retrying for up to `wait_s`; True when Redis has it."""
    async def go() -> bool:
        client = connect(url)
        try:
            pub = Publisher(client)
            await pub.publish(TITLES, title_event_for(doc, replaced))
            deadline = time.monotonic() + wait_s
            while pub.outbox and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                await pub.flush()
            return not pub.outbox
        finally:
            await client.aclose()
    return asyncio.run(go())
