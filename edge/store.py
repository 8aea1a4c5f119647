"""The edge's two cache tiers: memory (LRU, bytes-bounded) over disk (diskcache).

Whole objects are stored: an :class:`~edge.policy.Entry` (metadata) plus the body bytes.

Disk layout in one ``diskcache.Cache`` (safe across threads and worker processes):

- ``("m", key)`` → the entry as a dict (``Entry.to_dict``), pickled by diskcache;
- ``("b", body_id)`` → the body bytes (diskcache keeps values ≥ 32 KiB as plain files).

The body is written before the metadata that names it, so a reader never sees metadata
without its body (a body evicted on its own reads as a miss).

Eviction on disk is **least-recently-stored** by default, not LRU: diskcache's LRU turns
every read into a SQLite write (~2,500 vs ~4,200 1-MB gets/s measured here, FACTS.md),
and the memory tier in front already keeps the recently *used* objects, so the disk tier
only needs to keep what was stored recently. ``disk_policy="least-recently-used"`` is
available when exact LRU on disk matters more than read cost. ``cull_limit=0`` keeps
eviction off the request path; :meth:`DiskTier.cull` runs it in the background.

Several worker processes share the disk tier; each has its own memory tier. A purge is
recorded in the disk tier (``("purge", seq)``), and every worker drops matching memory
entries when it next sees the sequence number change (checked at most every 0.5 s).

On start, value files that no row references (debris of a worker killed mid-write) are
swept (:meth:`DiskTier.sweep_orphans`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache

from edge.clock import SYSTEM_CLOCK, Clock
from edge.policy import Entry, LruIndex

ORPHAN_MIN_AGE_S = 10.0
"""Value files younger than this are not swept (another worker may be writing their row)."""


@dataclass(frozen=True)
class Hit:
    """A stored object found in one tier."""

    entry: Entry
    body: bytes
    tier: str
    """"memory" or "disk"."""


class MemoryTier:
    """Byte-bounded LRU of (entry, body) pairs."""

    def __init__(self, capacity_bytes: int) -> None:
        self.index = LruIndex(capacity_bytes)
        self._items: dict[str, tuple[Entry, bytes]] = {}

    @property
    def size_bytes(self) -> int:
        return self.index.total_bytes

    def get(self, key: str) -> tuple[Entry, bytes] | None:
        item = self._items.get(key)
        if item is not None:
            self.index.touch(key)
        return item

    def put(self, key: str, entry: Entry, body: bytes) -> None:
        for victim in self.index.add(key, len(body) + 512):
            self._items.pop(victim, None)
        if key in self.index:
            self._items[key] = (entry, body)

    def update_entry(self, key: str, entry: Entry) -> None:
        item = self._items.get(key)
        if item is not None:
            self._items[key] = (entry, item[1])

    def discard(self, key: str) -> None:
        self._items.pop(key, None)
        self.index.remove(key)

    def keys(self) -> list[str]:
        return self.index.keys()


class DiskTier:
    """diskcache-backed tier; all methods are blocking (run them in a thread)."""

    def __init__(self, directory: Path, capacity_bytes: int,
                 policy: str = "least-recently-stored", clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.cache = diskcache.Cache(
            str(directory), size_limit=capacity_bytes, eviction_policy=policy, cull_limit=0,
            statistics=False,
        )
        self.swept_files = self.sweep_orphans()

    def sweep_orphans(self, min_age_s: float = ORPHAN_MIN_AGE_S) -> int:
        """Delete value files that no row references; returns how many went.

        diskcache writes a large value's ``.val`` file before the row that names it, and
        removes the row before the file: a worker killed in between (kill -9, OOM) leaves a
        file that nothing will ever delete. The rows are read from diskcache's own SQLite
        file, read-only; files younger than ``min_age_s`` are left alone, since another
        worker may be about to insert their row.
        """
        root = Path(self.cache.directory)
        db = root / diskcache.core.DBNAME
        try:
            with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True,
                                                    timeout=30)) as con:
                referenced = {str(root / name) for (name,) in con.execute(
                    "SELECT filename FROM Cache WHERE filename IS NOT NULL")}
        except sqlite3.Error:
            return 0  # an unreadable index: leave every file alone
        cutoff_s = self.clock() - min_age_s
        swept = 0
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if not name.endswith(".val"):
                    continue
                path = os.path.join(dirpath, name)
                if path in referenced:
                    continue
                try:
                    if os.stat(path).st_mtime > cutoff_s:
                        continue
                    os.remove(path)
                    swept += 1
                except FileNotFoundError:
                    continue  # removed meanwhile (its row went first, by diskcache)
        return swept

    def get(self, key: str) -> tuple[Entry, bytes] | None:
        meta = self.cache.get(("m", key))
        if meta is None:
            return None
        entry = Entry.from_dict(meta)
        body = self.cache.get(("b", entry.body_id), read=True)
        if body is None:
            return None
        if isinstance(body, bytes):
            data = body
        else:
            with body:
                data = body.read()
        if len(data) != entry.size_bytes:
            return None
        return entry, data

    def put(self, key: str, entry: Entry, body: bytes) -> Entry:
        """Store an object; returns the entry with its new ``body_id``."""
        old = self.cache.get(("m", key))
        body_id = uuid.uuid4().hex
        stored = Entry(entry.status, entry.headers, entry.request_time_s,
                       entry.response_time_s, len(body), body_id)
        self.cache.set(("b", body_id), body)
        self.cache.set(("m", key), stored.to_dict())
        if old is not None:
            self.cache.delete(("b", old.get("body_id")))
        return stored

    def update_entry(self, key: str, entry: Entry) -> None:
        """Replace the metadata only (after a 304), keeping the body."""
        if self.cache.get(("m", key)) is not None:
            self.cache.set(("m", key), entry.to_dict())

    def delete(self, key: str) -> bool:
        meta = self.cache.pop(("m", key), default=None)
        if meta is None:
            return False
        self.cache.delete(("b", meta.get("body_id")))
        return True

    def keys(self) -> Iterator[str]:
        for k in self.cache.iterkeys():
            if isinstance(k, tuple) and len(k) == 2 and k[0] == "m":
                yield str(k[1])

    def size_bytes(self) -> int:
        return int(self.cache.volume())

    def cull(self) -> int:
        return int(self.cache.cull())

    # --- purge log shared by worker processes
    def record_purge(self, target: str, prefix: bool) -> int:
        with self.cache.transact():
            seq = int(self.cache.get("purge-seq", 0)) + 1
            self.cache.set(("purge", seq), (target, prefix, self.clock()))
            self.cache.set("purge-seq", seq)
        return seq

    def purge_seq(self) -> int:
        return int(self.cache.get("purge-seq", 0))

    def purges_since(self, seq: int) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        last = self.purge_seq()
        for s in range(seq + 1, last + 1):
            rec: Any = self.cache.get(("purge", s))
            if rec is not None:
                out.append((str(rec[0]), bool(rec[1])))
        return out

    def close(self) -> None:
        self.cache.close()


class TieredStore:
    """Memory over disk. Blocking disk calls are made by the caller in a thread."""

    def __init__(self, memory_bytes: int, disk_dir: Path, disk_bytes: int,
                 disk_policy: str = "least-recently-stored", clock: Clock = SYSTEM_CLOCK) -> None:
        self.memory = MemoryTier(memory_bytes)
        os.makedirs(disk_dir, exist_ok=True)
        self.disk = DiskTier(disk_dir, disk_bytes, disk_policy, clock)
        self.seen_purge_seq = self.disk.purge_seq()
        self._purge_checked_at = 0.0

    def lookup_memory(self, key: str) -> Hit | None:
        item = self.memory.get(key)
        return Hit(item[0], item[1], "memory") if item else None

    def lookup_disk(self, key: str) -> Hit | None:
        """Blocking."""
        item = self.disk.get(key)
        return Hit(item[0], item[1], "disk") if item else None

    def promote(self, key: str, hit: Hit) -> None:
        self.memory.put(key, hit.entry, hit.body)

    def store(self, key: str, entry: Entry, body: bytes, to_disk: bool) -> Entry:
        """Blocking when ``to_disk``: writes the disk tier, then the memory tier."""
        if to_disk:
            entry = self.disk.put(key, entry, body)
        self.memory.put(key, entry, body)
        return entry

    def purge(self, target: str, prefix: bool) -> int:
        """Blocking. Remove ``target`` (or every key starting with it) from both tiers."""
        n = 0
        for key in list(self.memory.keys()):
            if _matches(key, target, prefix):
                self.memory.discard(key)
                n += 1
        disk_n = 0
        for key in list(self.disk.keys()):
            if _matches(key, target, prefix) and self.disk.delete(key):
                disk_n += 1
        self.seen_purge_seq = self.disk.record_purge(target, prefix)
        return max(n, disk_n)

    def apply_remote_purges(self, now_s: float) -> None:
        """Blocking (cheap). Drop memory entries purged by another worker process."""
        if now_s - self._purge_checked_at < 0.5:
            return
        self._purge_checked_at = now_s
        seq = self.disk.purge_seq()
        if seq == self.seen_purge_seq:
            return
        for target, prefix in self.disk.purges_since(self.seen_purge_seq):
            for key in list(self.memory.keys()):
                if _matches(key, target, prefix):
                    self.memory.discard(key)
        self.seen_purge_seq = seq


def _matches(key: str, target: str, prefix: bool) -> bool:
    return key.startswith(target) if prefix else (key == target or key.split("?", 1)[0] == target)
