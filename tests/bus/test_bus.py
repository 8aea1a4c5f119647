"""The bus against a real redis-server: groups, acks, reclaim, dead letters, the outbox."""

from __future__ import annotations

import asyncio
import json

import pytest

from abrstack.bus import Consumer, Event, MalformedEvent, Publisher, SeenIds, connect, dead_topic
from abrstack.redisproc import RedisServer


def test_event_round_trip_and_schema_checks() -> None:
    e = Event("title.published", {"title": "t", "version": 2})
    assert Event.decode(e.encode()) == e
    bad = [b"not json", b"[]", json.dumps({"v": 2, "id": "x", "type": "t", "ts": 1, "data": {}}),
           json.dumps({"v": 1, "id": "", "type": "t", "ts": 1, "data": {}}),
           json.dumps({"v": 1, "id": "x", "type": "t", "ts": "1", "data": {}}),
           json.dumps({"v": 1, "id": "x", "type": "t", "ts": 1, "data": []}), None]
    for raw in bad:
        with pytest.raises(MalformedEvent):
            Event.decode(raw)


def test_seen_ids_is_bounded() -> None:
    seen = SeenIds(capacity=2)
    assert seen.first_time("a") and not seen.first_time("a")
    assert seen.first_time("b") and seen.first_time("c")
    assert seen.first_time("a")  # evicted: the bound holds


def test_publish_consume_ack(redis_server: RedisServer) -> None:
    async def go() -> None:
        r = connect(redis_server.url)
        c = Consumer(r, "titles", "origin", "o1", block_s=0.1)
        await c.ensure_group()
        pub = Publisher(r, maxlen=1000)
        sent = [Event("title.published", {"n": i}) for i in range(5)]
        for e in sent:
            assert await pub.publish("titles", e) is not None
        got = await c.poll()
        assert [d.event for d in got] == sent
        await c.ack(*got)
        assert (await r.xpending("titles", "origin"))["pending"] == 0
        assert await c.poll() == []
        await r.aclose()
    asyncio.run(go())


def test_retention_is_bounded(redis_server: RedisServer) -> None:
    async def go() -> None:
        r = connect(redis_server.url)
        pub = Publisher(r, maxlen=100)
        for i in range(2000):
            await pub.publish("qoe", Event("qoe.beacon", {"i": i}))
        assert await r.xlen("qoe") < 400  # MAXLEN ~ trims by whole nodes
        await r.aclose()
    asyncio.run(go())


def test_dead_consumer_messages_are_reclaimed_then_dead_lettered(redis_server: RedisServer) -> None:
    async def go() -> None:
        r = connect(redis_server.url)
        a = Consumer(r, "jobs", "workers", "a", visibility_s=0.2, max_deliveries=2, block_s=0.05)
        b = Consumer(r, "jobs", "workers", "b", visibility_s=0.2, max_deliveries=2, block_s=0.05)
        await a.ensure_group()
        ev = Event("job.queued", {"job": "j1"})
        await Publisher(r).publish("jobs", ev)
        first = await a.poll()
        assert [d.event.id for d in first] == [ev.id] and first[0].deliveries == 1
        assert await b.poll() == []  # a holds it, not yet idle long enough
        await asyncio.sleep(0.3)  # a "died" without acking
        again = await b.poll()
        assert [d.event.id for d in again] == [ev.id] and again[0].deliveries == 2
        await asyncio.sleep(0.3)  # b died too: third delivery is past max_deliveries
        assert await a.poll() == []
        dead = await r.xrange(dead_topic("jobs"))
        assert len(dead) == 1 and b"without an ack" in dead[0][1][b"reason"]
        assert Event.decode(dead[0][1][b"e"]).id == ev.id
        assert (await r.xpending("jobs", "workers"))["pending"] == 0
        await r.aclose()
    asyncio.run(go())


def test_malformed_entries_go_to_dead_letter_and_consumer_goes_on(redis_server: RedisServer) -> None:
    async def go() -> None:
        r = connect(redis_server.url)
        c = Consumer(r, "titles", "edge", "e1", block_s=0.05, max_deliveries=2, visibility_s=0.1)
        await r.xadd("titles", {"e": b"{broken"})
        await r.xadd("titles", {"other": b"x"})
        good = Event("title.deleted", {"title": "t"})
        await Publisher(r).publish("titles", good)
        handled: list[Event] = []

        async def handler(e: Event) -> None:
            if e.type == "boom":
                raise RuntimeError("handler bug")
            handled.append(e)

        await Publisher(r).publish("titles", Event("boom"))
        stop = asyncio.Event()
        task = asyncio.create_task(c.run(handler, stop))
        for _ in range(100):
            if len(await r.xrange(dead_topic("titles"))) >= 3:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
        assert handled == [good]
        reasons = [f[b"reason"].decode() for _i, f in await r.xrange(dead_topic("titles"))]
        assert reasons[0].startswith("malformed: not JSON")
        assert reasons[1] == "malformed: entry has no 'e' field"
        assert reasons[2].startswith("handler failed 2 times: handler bug")
        await r.aclose()
    asyncio.run(go())


def test_outbox_keeps_events_while_redis_is_down(redis_server: RedisServer) -> None:
    async def go() -> None:
        r = connect(redis_server.url)
        pub = Publisher(r, outbox_max=3)
        await pub.publish("titles", Event("title.published", {"n": 0}))
        redis_server.stop()
        kept = [Event("title.replaced", {"n": i}) for i in range(1, 5)]
        for e in kept:
            assert await pub.publish("titles", e) is None  # never raises
        assert len(pub.outbox) == 3 and pub.dropped == 1  # bounded: oldest dropped, counted
        assert not await pub.flush()
        redis_server.start()  # same port and state folder: the AOF brings event 0 back
        assert await pub.flush()
        # a publish after an outage goes after what was kept, in order
        await pub.publish("titles", Event("title.deleted", {"n": 5}))
        entries = await r.xrange("titles")
        assert [Event.decode(f[b"e"]).data["n"] for _i, f in entries] == [0, 2, 3, 4, 5]
        await r.aclose()
    asyncio.run(go())


def test_missing_binary_is_one_sentence(tmp_path, monkeypatch) -> None:
    from abrstack.redisproc import RedisServerError
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RedisServerError, match="redis-server is not installed"):
        RedisServer(tmp_path / "r").start()


def test_publish_many_in_order_and_kept_when_down(redis_server: RedisServer) -> None:
    async def go() -> None:
        r = connect(redis_server.url)
        pub = Publisher(r)
        assert await pub.publish_many("t", [Event("x", {"n": i}) for i in range(3)]) == 3
        redis_server.stop()
        assert await pub.publish_many("t", [Event("x", {"n": i}) for i in range(3, 5)]) == 0
        redis_server.start()
        assert await pub.flush()
        assert [Event.decode(f[b"e"]).data["n"] for _i, f in await r.xrange("t")] == [0, 1, 2, 3, 4]
        await r.aclose()
    asyncio.run(go())
