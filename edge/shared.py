"""Request collapsing across worker processes: one origin fetch per object per machine.

Within a worker, readers follow an :class:`~edge.collapse.Inflight`. Across workers, the
worker that wins an exclusive lock file (``O_CREAT|O_EXCL``, RFC-free but POSIX-atomic)
fetches, and tees the response into files that the other workers tail:

    inflight/<sha1(key)>.lock   pid of the fetching worker (the lock)
    inflight/<sha1(key)>.head   JSON: status, headers, content length, shareable, storable
    inflight/<sha1(key)>.body   the body so far (appended as chunks arrive)
    inflight/<sha1(key)>.done   total length, written when the body is complete
    inflight/<sha1(key)>.err    written when the fetch failed
    inflight/<sha1(key)>.f<pid> one per mirroring worker while it follows (the fetching
                                worker keeps a fetch that its own clients left for them)

A worker that loses the race mirrors the files into a local ``Inflight`` (polling every
``POLL_S``), so its clients stream the body as it arrives, as local followers do. When
the object is stored in the disk tier the files are removed; later requests hit the cache.
Local file I/O on small files is done inline: it is page-cache work, microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import os
from pathlib import Path

from abrstack.procs import pid_alive
from edge.clock import SYSTEM_CLOCK, Clock
from edge.collapse import Head, HeadKind, Inflight
from edge.policy import Headers

POLL_S = 0.002
STALE_LOCK_S = 120.0


class Mirrored(enum.Enum):
    """How following another worker's fetch ended."""

    COMPLETE = "complete"
    """The whole body came through (the flight is finished)."""
    GONE = "gone"
    """The lock went away without a head, or the answer is not shareable: look in the
    cache, or fetch alone."""
    FAILED = "failed"
    """The fetching worker failed (before the head: nothing resolved; after: the flight
    failed)."""


class SharedFetch:
    """The lock and files of one object's cross-worker fetch."""

    def __init__(self, directory: Path, key: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        stem = directory / hashlib.sha1(key.encode()).hexdigest()
        self.lock = stem.with_suffix(".lock")
        self.head = stem.with_suffix(".head")
        self.body = stem.with_suffix(".body")
        self.done = stem.with_suffix(".done")
        self.err = stem.with_suffix(".err")
        self.follower = stem.with_suffix(f".f{os.getpid()}")
        self._stem = stem
        self._fd: int | None = None

    def has_followers(self) -> bool:
        """Another (live) worker mirrors this fetch now."""
        for marker in self._stem.parent.glob(self._stem.name + ".f*"):
            pid = marker.suffix[2:]
            if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
                return True
        return False

    # ------------------------------------------------------------- leader side
    def try_lock(self) -> bool:
        """Become the fetching worker for this key (False: another worker is)."""
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    self.cleanup()
                    continue
                return False
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            for p in (self.head, self.body, self.done, self.err):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            return True
        return False

    def _stale(self) -> bool:
        try:
            pid = int(self.lock.read_text() or "0")
            age = self.clock() - self.lock.stat().st_mtime
        except (OSError, ValueError):
            return False
        if age > STALE_LOCK_S:
            return True
        if pid <= 0:
            return age > 1.0  # being written
        return not pid_alive(pid)

    def publish_head(self, head: Head) -> None:
        self._fd = os.open(self.body, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        tmp = self.head.with_suffix(".head-tmp")
        tmp.write_text(json.dumps({
            "status": head.status, "headers": [list(h) for h in head.headers],
            "content_length": head.content_length, "shareable": head.shareable,
            "storable": head.storable,
        }))
        os.replace(tmp, self.head)

    def append(self, chunk: bytes) -> None:
        if self._fd is not None:
            os.write(self._fd, chunk)

    def finish(self, total_bytes: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.done.write_text(str(total_bytes))

    def fail(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            self.err.write_text("failed")

    def cleanup(self) -> None:
        """Remove the files (``done`` last); readers with the body open keep reading."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for p in (self.head, self.body, self.err, self.lock, self.done):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    # ------------------------------------------------------------- mirror side
    async def mirror(self, flight: Inflight, timeout_s: float) -> Mirrored:
        """Feed ``flight`` from another worker's fetch."""
        with contextlib.suppress(OSError):
            self.follower.touch()
        try:
            return await self._mirror(flight, timeout_s)
        finally:
            with contextlib.suppress(OSError):
                self.follower.unlink()

    async def _mirror(self, flight: Inflight, timeout_s: float) -> Mirrored:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.head.exists():
            if self.err.exists():
                return Mirrored.FAILED
            if not self.lock.exists() or loop.time() > deadline:
                return Mirrored.GONE
            await asyncio.sleep(POLL_S)
        try:
            meta = json.loads(self.head.read_text())
            fd = os.open(self.body, os.O_RDONLY)
        except (OSError, ValueError):
            return Mirrored.GONE
        headers: Headers = tuple((str(k), str(v)) for k, v in meta["headers"])
        if not meta["shareable"]:
            os.close(fd)
            return Mirrored.GONE
        flight.resolve(Head(HeadKind.BODY, int(meta["status"]), headers=headers,
                            content_length=meta["content_length"], shareable=True,
                            storable=bool(meta.get("storable"))))
        length = meta["content_length"]
        try:
            while True:
                data = os.read(fd, 1 << 20)
                if data:
                    flight.append(data)
                    continue
                complete = length is not None and len(flight.buf) >= length
                if complete or self.done.exists():
                    flight.append(os.read(fd, 1 << 30))
                    flight.finish()
                    return Mirrored.COMPLETE
                if not self.lock.exists():  # cleaned up: the file holds all there was
                    flight.append(os.read(fd, 1 << 30))
                    if length is None or len(flight.buf) >= length:
                        flight.finish()
                        return Mirrored.COMPLETE
                if self.err.exists() or not self.lock.exists() or loop.time() > deadline:
                    flight.fail(ConnectionError("the fetching worker failed"))
                    return Mirrored.FAILED
                await asyncio.sleep(POLL_S)
        finally:
            os.close(fd)
