"""The storage shell on real files: disk tier, purge log between workers, and the
cross-worker in-flight files."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from edge.collapse import Head, HeadKind, Inflight
from edge.policy import Entry
from edge.shared import Mirrored, SharedFetch
from edge.store import TieredStore


def entry(n: int) -> Entry:
    return Entry(200, (("cache-control", "max-age=60"),), 1.0, 2.0, n)


def test_disk_tier_roundtrip_and_replace(tmp_path: Path) -> None:
    store = TieredStore(1 << 20, tmp_path / "d", 10 << 20)
    body = os.urandom(100_000)
    stored = store.store("/a", entry(len(body)), body, to_disk=True)
    hit = store.lookup_disk("/a")
    assert hit is not None and hit.body == body and hit.entry.body_id == stored.body_id
    store.store("/a", entry(3), b"new", to_disk=True)
    again = store.lookup_disk("/a")
    assert again is not None and again.body == b"new"
    bodies = [k for k in store.disk.cache.iterkeys() if isinstance(k, tuple) and k[0] == "b"]
    assert len(bodies) == 1  # the replaced body was deleted


def test_purge_reaches_another_workers_memory(tmp_path: Path) -> None:
    a = TieredStore(1 << 20, tmp_path / "d", 10 << 20)
    b = TieredStore(1 << 20, tmp_path / "d", 10 << 20)  # a second worker, same disk
    for s in (a, b):
        s.store("/media/t/x", entry(1), b"x", to_disk=True)
        s.store("/media/u/y", entry(1), b"y", to_disk=True)
    assert a.purge("/media/t/", prefix=True) == 1
    assert b.lookup_memory("/media/t/x") is not None  # not seen yet
    b.apply_remote_purges(now_s=100.0)
    assert b.lookup_memory("/media/t/x") is None
    assert b.lookup_memory("/media/u/y") is not None
    assert b.lookup_disk("/media/t/x") is None


def test_shared_fetch_mirror_streams_and_finishes(tmp_path: Path) -> None:
    async def run() -> tuple[bool, bytes, list[int]]:
        leader, follower = SharedFetch(tmp_path, "/k"), SharedFetch(tmp_path, "/k")
        assert leader.try_lock() and not follower.try_lock()
        flight = Inflight("/k")
        task = asyncio.ensure_future(follower.mirror(flight, timeout_s=5))
        leader.publish_head(Head(HeadKind.BODY, 200, headers=(("etag", '"1"'),), content_length=6))
        seen: list[int] = []
        leader.append(b"abc")
        for _ in range(100):
            await asyncio.sleep(0.005)
            if len(flight.buf):
                seen.append(len(flight.buf))  # the first half arrived before the end
                break
        leader.append(b"def")
        leader.finish(6)
        outcome = await task
        leader.cleanup()
        return outcome is Mirrored.COMPLETE and flight.done, bytes(flight.buf), seen

    ok, body, seen = asyncio.run(run())
    assert ok and body == b"abcdef" and seen == [3]
    assert list(tmp_path.iterdir()) == []


def test_stale_lock_of_a_dead_worker_is_taken_over(tmp_path: Path) -> None:
    dead = SharedFetch(tmp_path, "/k")
    dead.lock.write_text("999999999")  # no such process
    assert SharedFetch(tmp_path, "/k").try_lock()


def test_orphan_value_files_are_swept_on_start(tmp_path: Path) -> None:
    store = TieredStore(1 << 20, tmp_path / "d", 10 << 20)
    body = os.urandom(100_000)  # large enough to be a .val file
    store.store("/kept", entry(len(body)), body, to_disk=True)
    store.disk.close()
    root = tmp_path / "d"
    kept = sorted(root.rglob("*.val"))
    assert len(kept) == 1
    # What a worker killed between writing a value file and its row leaves behind.
    (root / "ab" / "cd").mkdir(parents=True, exist_ok=True)
    old = [root / "ab" / "cd" / "dead1.val", root / "ab" / "dead2.val"]
    for f in old:
        f.write_bytes(b"x" * 1000)
        os.utime(f, (1_000_000_000, 1_000_000_000))
    young = root / "ab" / "young.val"  # another worker may be writing its row right now
    young.write_bytes(b"y")
    other = root / "ab" / "notes.txt"
    other.write_bytes(b"z")
    os.utime(other, (1_000_000_000, 1_000_000_000))

    again = TieredStore(1 << 20, root, 10 << 20)
    assert again.disk.swept_files == 2
    assert not any(f.exists() for f in old)
    assert young.exists() and other.exists()
    assert sorted(root.rglob("*.val")) == sorted([*kept, young])
    hit = again.lookup_disk("/kept")
    assert hit is not None and hit.body == body
