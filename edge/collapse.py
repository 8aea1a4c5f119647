"""Request collapsing: one origin fetch per object, followed by any number of readers.

An :class:`Inflight` is created by the first request that misses; the fetch runs as its
own task (a client hanging up never cancels it) and appends chunks to a growing buffer.
Every reader — the first request and all collapsed ones — follows the buffer from its own
offset and gets each chunk as soon as it arrives, instead of waiting for the whole object
(what nginx's ``proxy_cache_lock`` does).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass

from edge.policy import Entry, Headers

FIRST_CHUNK_BYTES = 16 * 1024


class HeadKind(enum.Enum):
    """What the readers of an in-flight fill are told to send."""

    BODY = "body"
    """A new response streams in (its bytes follow in the buffer)."""
    STORED = "stored"
    """Serve ``Head.entry``/``Head.body``: found on disk, refreshed by a 304, or the origin
    failed and stale-if-error applies."""
    ERROR = "error"
    """No response: answer ``Head.status`` with ``Head.reason``."""


@dataclass(frozen=True)
class Head:
    """How an in-flight fetch turned out, known before its body is complete."""

    kind: HeadKind
    status: int
    headers: Headers = ()
    content_length: int | None = None
    shareable: bool = True
    """False for private/no-store answers: collapsed readers must fetch on their own."""
    storable: bool = False
    """The fetching worker stores this answer once its end is confirmed (so a worker
    mirroring the fetch may keep its copy too)."""
    entry: Entry | None = None
    body: bytes = b""
    x_cache: str = "MISS"
    reason: str = ""


class Inflight:
    """An object being fetched: a head future and a growing body buffer."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.head: asyncio.Future[Head] = asyncio.get_running_loop().create_future()
        self.buf = bytearray()
        self.done = False
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self.remote = False
        """True when another worker process fetches and this one mirrors it."""
        self.out_headers: list[tuple[str, str]] | None = None
        """Response headers shared by every reader (computed by the first one)."""
        self.readers = 0
        """Clients following this fetch now."""
        self.keep = False
        """Finish even when every reader left (prefetches, background revalidations)."""
        self.task: asyncio.Task[None] | None = None
        """The task that fetches (or mirrors); cancelled when every reader left."""

    # --- writer side (the fetch task)
    def resolve(self, head: Head) -> None:
        if not self.head.done():
            self.head.set_result(head)
        if head.kind is not HeadKind.BODY:
            self.done = True
            self._wake()

    def append(self, chunk: bytes) -> None:
        self.buf += chunk
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self.done = True
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # mark retrieved: a fetch nobody waits for is fine
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- reader side
    async def follow(self, start: int = 0, end: int | None = None,
                     max_chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
        """Yield the body bytes ``[start, end)`` as they arrive; raises if the fetch fails
        part-way (the reader's response is then cut short, as a proxy must).

        Readers take turns: after each chunk a reader yields to the event loop, so that
        with hundreds of collapsed readers every one gets its first bytes out early
        instead of the first reader sending the whole object before the second starts.
        """
        pos = start
        limit = FIRST_CHUNK_BYTES  # the first chunk is small: everyone's TTFB, then bulk
        while True:
            stop = len(self.buf) if end is None else min(end, len(self.buf))
            if pos < stop:
                hi = min(stop, pos + limit)
                limit = max_chunk
                yield bytes(self.buf[pos:hi])
                pos = hi
                await asyncio.sleep(0)
                continue
            if end is not None and pos >= end:
                return
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            await self._changed.wait()
