"""The event bus: a Kafka-shaped API over Redis Streams (redis.asyncio).

- a *topic* is one stream, trimmed to about `maxlen` entries (`XADD MAXLEN ~`);
- a *group* is a consumer group; delivery is at-least-once with explicit `XACK`;
- a message that a dead consumer held is reclaimed (`XAUTOCLAIM`) after `visibility_s`;
- after `max_deliveries` deliveries, or when malformed, a message goes to `<topic>.dead` with
  its reason and is acknowledged: nothing stops a consumer;
- every event has an id, so handlers are idempotent (`SeenIds`);
- publishers keep events in a bounded outbox while Redis is down and send them, in order,
  when it is back: the bus is never on the serving path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from abrstack.errors import AbrError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""The version of the event envelope that this module writes and reads."""
MAX_EVENT_BYTES = 64 * 1024
"""Bigger events are refused at publish and dead-lettered at consume."""
MAX_ID_CHARS = 64
MAX_TYPE_CHARS = 64


class BusError(AbrError):
    """The event bus was misused or unreachable."""


class MalformedEvent(BusError):
    """A stream entry that is not a valid event; the message says why."""


@dataclass(frozen=True)
class Event:
    """One versioned JSON event: `{"v": 1, "id": ..., "type": ..., "ts": ..., "data": {...}}`."""

    type: str
    """What happened, past tense, dotted: `title.published`, `job.queued`, `qoe.beacon`."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """The payload; JSON-serialisable."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Unique per event, kept across redeliveries: the key for idempotent handlers."""
    ts: float = field(default_factory=time.time)
    """When the event was made (Unix seconds)."""
    v: int = SCHEMA_VERSION
    """Envelope schema version."""

    def encode(self) -> bytes:
        body = json.dumps({"v": self.v, "id": self.id, "type": self.type, "ts": self.ts,
                           "data": dict(self.data)}, separators=(",", ":")).encode()
        if len(body) > MAX_EVENT_BYTES:
            raise BusError(f"event {self.type} is {len(body)} bytes, over the {MAX_EVENT_BYTES}-byte limit.")
        return body

    @classmethod
    def decode(cls, raw: bytes | str | None) -> Event:
        """Parse and check an event body; raises `MalformedEvent` with the reason."""
        if raw is None:
            raise MalformedEvent("entry has no 'e' field")
        if len(raw) > MAX_EVENT_BYTES:
            raise MalformedEvent(f"event is {len(raw)} bytes, over {MAX_EVENT_BYTES}")
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise MalformedEvent(f"not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise MalformedEvent("event is not a JSON object")
        v, eid, etype, ts, data = (obj.get(k) for k in ("v", "id", "type", "ts", "data"))
        if v != SCHEMA_VERSION:
            raise MalformedEvent(f"unsupported schema version {v!r} (this reader knows {SCHEMA_VERSION})")
        if not isinstance(eid, str) or not 0 < len(eid) <= MAX_ID_CHARS:
            raise MalformedEvent("'id' must be a string of 1-64 characters")
        if not isinstance(etype, str) or not 0 < len(etype) <= MAX_TYPE_CHARS:
            raise MalformedEvent("'type' must be a string of 1-64 characters")
        if not isinstance(ts, int | float) or isinstance(ts, bool):
            raise MalformedEvent("'ts' must be a number")
        if not isinstance(data, dict):
            raise MalformedEvent("'data' must be an object")
        return cls(type=etype, data=data, id=eid, ts=float(ts), v=v)


@dataclass(frozen=True)
class Delivery:
    """One event handed to a consumer, to be acknowledged with `Consumer.ack`."""

    topic: str
    msg_id: str
    """The stream entry id (`<ms>-<seq>`)."""
    event: Event
    deliveries: int
    """How many times this entry has been delivered, this time included."""


def dead_topic(topic: str) -> str:
    return f"{topic}.dead"


def connect(url: str) -> aioredis.Redis:
    """A client for the bus at `url` (`redis://host:port/db`); short timeouts, no retries:
    the outbox, not the client, rides out an outage."""
    return aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0,
                                   retry_on_timeout=False)


class Publisher:
    """Publishes to topics; while Redis is unreachable, keeps up to `outbox_max` events (the
    oldest are dropped past that, and counted) and sends them in order once it is back."""

    def __init__(self, client: aioredis.Redis, maxlen: int = 100_000, outbox_max: int = 10_000):
        self.client = client
        self.maxlen = maxlen
        self.outbox: deque[tuple[str, bytes]] = deque(maxlen=outbox_max)
        self.dropped = 0
        """Events dropped because the outbox was full."""
        self._lock = asyncio.Lock()

    async def publish(self, topic: str, event: Event) -> str | None:
        """Append `event` to `topic`; returns its stream id, or None when it was kept in the
        outbox (Redis down or events still waiting before it). Never raises on an outage."""
        body = event.encode()
        async with self._lock:
            if self.outbox and not await self._flush_locked():
                self._keep(topic, body)
                return None
            try:
                return await self._xadd(topic, body)
            except (RedisError, OSError) as e:
                log.warning("bus: %s unreachable (%s); event %s kept in outbox", topic, e, event.id)
                self._keep(topic, body)
                return None

    async def publish_many(self, topic: str, events: list[Event]) -> int:
        """Append `events` in one pipelined round trip; returns how many Redis took (the rest,
        if it was down, are kept in the outbox in order)."""
        bodies = [e.encode() for e in events]
        async with self._lock:
            if not self.outbox or await self._flush_locked():
                pipe = self.client.pipeline(transaction=False)
                for body in bodies:
                    pipe.xadd(topic, {"e": body}, maxlen=self.maxlen, approximate=True)
                try:
                    await pipe.execute()
                    return len(bodies)
                except (RedisError, OSError) as e:
                    # a partly applied pipeline is re-sent whole: at-least-once, ids dedupe
                    log.warning("bus: %s unreachable (%s); %d events kept", topic, e, len(bodies))
            for body in bodies:
                self._keep(topic, body)
            return 0

    async def flush(self) -> bool:
        """Send what the outbox holds; True when it is empty afterwards."""
        async with self._lock:
            return await self._flush_locked()

    async def _flush_locked(self) -> bool:
        while self.outbox:
            topic, body = self.outbox[0]
            try:
                await self._xadd(topic, body)
            except (RedisError, OSError):
                return False
            self.outbox.popleft()
        return True

    def _keep(self, topic: str, body: bytes) -> None:
        if len(self.outbox) == self.outbox.maxlen:
            self.dropped += 1
        self.outbox.append((topic, body))

    async def _xadd(self, topic: str, body: bytes) -> str:
        msg_id = await self.client.xadd(topic, {"e": body}, maxlen=self.maxlen, approximate=True)
        return msg_id.decode() if isinstance(msg_id, bytes) else str(msg_id)

    async def run_flusher(self, interval_s: float = 0.5) -> None:
        """Background task: retry the outbox every `interval_s` until cancelled."""
        while True:
            if self.outbox:
                await self.flush()
            await asyncio.sleep(interval_s)


Handler = Callable[[Event], Awaitable[None]]


class Consumer:
    """One member of a consumer group on one topic."""

    def __init__(self, client: aioredis.Redis, topic: str, group: str, name: str, *,
                 visibility_s: float = 30.0, max_deliveries: int = 5, batch: int = 100,
                 block_s: float = 1.0, dead_maxlen: int = 10_000):
        if max_deliveries < 1 or batch < 1 or visibility_s <= 0:
            raise BusError("max_deliveries and batch must be ≥ 1 and visibility_s > 0.")
        self.client, self.topic, self.group, self.name = client, topic, group, name
        self.visibility_ms = max(1, int(visibility_s * 1000))
        self.max_deliveries = max_deliveries
        self.batch = batch
        self.block_ms = max(1, int(block_s * 1000))
        self.dead_maxlen = dead_maxlen
        self.dead_lettered = 0
        self._claim_cursor = "0-0"
        self._next_reclaim = 0.0

    async def ensure_group(self, start: str = "0") -> None:
        """Create the group (and the stream) if missing; `start="$"` skips the backlog."""
        try:
            await self.client.xgroup_create(self.topic, self.group, id=start, mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def poll(self, ack: Sequence[Delivery] = ()) -> list[Delivery]:
        """Reclaimed messages first, then new ones (blocking up to `block_s`). Malformed
        entries and entries past `max_deliveries` are dead-lettered here, never returned.
        `ack`: deliveries handled since the last poll, acknowledged in the same round trip.

        Idle messages are looked for at most every `visibility_s / 4` (and at least every
        second), not on every poll: a reclaim is one more round trip, and a message is only
        reclaimable `visibility_s` after its delivery anyway."""
        now = time.monotonic()
        got: list[Delivery] = []
        if ack and now < self._next_reclaim:  # the hot path: XACK + XREADGROUP, one round trip
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(self.topic, self.group, *(d.msg_id for d in ack))
            pipe.xreadgroup(self.group, self.name, {self.topic: ">"}, count=self.batch,
                            block=self.block_ms)
            replies: Any = await pipe.execute()
            return await self._read(replies[1], got)
        await self.ack(*ack)
        if now >= self._next_reclaim:
            got = await self._reclaim()
            if len(got) < self.batch:  # a full batch: more may wait, look again next poll
                self._next_reclaim = now + min(self.visibility_ms / 4000, 1.0)
        if len(got) < self.batch:
            resp: Any = await self.client.xreadgroup(self.group, self.name, {self.topic: ">"},
                                                count=self.batch - len(got),
                                                block=None if got else self.block_ms)
            return await self._read(resp, got)
        return got

    async def _read(self, resp: Any, got: list[Delivery]) -> list[Delivery]:
        for _stream, entries in resp or []:
            for msg_id, fields in entries:
                raw = fields.get(b"e", fields.get("e"))
                try:  # decoded inline: no await per entry on the hot path
                    got.append(Delivery(self.topic, _s(msg_id), Event.decode(raw), 1))
                except MalformedEvent as e:
                    await self.dead_letter(_s(msg_id), fields, f"malformed: {e}", 1)
        return got

    async def ack(self, *deliveries: Delivery) -> None:
        if deliveries:
            await self.client.xack(self.topic, self.group, *(d.msg_id for d in deliveries))

    async def _reclaim(self) -> list[Delivery]:
        reply: Any = await self.client.xautoclaim(
            self.topic, self.group, self.name, min_idle_time=self.visibility_ms,
            start_id=self._claim_cursor, count=self.batch)
        cursor, claimed = reply[0], reply[1]
        self._claim_cursor = _s(cursor)
        if not claimed:
            return []
        ids = [_s(m) for m, _f in claimed]
        pending: Any = await self.client.xpending_range(
            self.topic, self.group, min=ids[0], max=ids[-1], count=len(ids) * 2,
            consumername=self.name)
        counts = {_s(p["message_id"]): int(p["times_delivered"]) for p in pending}
        out = []
        for (_msg_id, fields), mid in zip(claimed, ids, strict=True):
            if fields is None:  # trimmed away by MAXLEN while pending
                await self.client.xack(self.topic, self.group, mid)
                continue
            d = await self._deliver(mid, fields, counts.get(mid, 2))
            if d is not None:
                out.append(d)
        return out

    async def _deliver(self, msg_id: str, fields: Mapping[Any, Any], n: int) -> Delivery | None:
        raw = fields.get(b"e", fields.get("e"))
        try:
            event = Event.decode(raw)
        except MalformedEvent as e:
            await self.dead_letter(msg_id, fields, f"malformed: {e}", n)
            return None
        if n > self.max_deliveries:
            await self.dead_letter(msg_id, fields, f"delivered {n - 1} times without an ack", n - 1)
            return None
        return Delivery(self.topic, msg_id, event, n)

    async def dead_letter(self, msg_id: str, fields: Mapping[Any, Any], reason: str, n: int) -> None:
        """Move an entry to `<topic>.dead` with its reason, then acknowledge it."""
        dead: dict[Any, Any] = {"reason": reason, "topic": self.topic, "msg_id": msg_id, "group": self.group,
                "deliveries": str(n)}
        raw = fields.get(b"e", fields.get("e"))
        if raw is not None:
            dead["e"] = raw[:MAX_EVENT_BYTES]
        await self.client.xadd(dead_topic(self.topic), dead, maxlen=self.dead_maxlen, approximate=True)
        await self.client.xack(self.topic, self.group, msg_id)
        self.dead_lettered += 1
        log.warning("bus: %s %s dead-lettered: %s", self.topic, msg_id, reason)

    async def run(self, handler: Handler, stop: asyncio.Event | None = None) -> None:
        """Poll, handle, ack until `stop` is set. A handler that raises leaves its message
        pending: it is redelivered after `visibility_s`, then dead-lettered."""
        ready = False
        handled: list[Delivery] = []  # acknowledged with the next poll, in its round trip
        while stop is None or not stop.is_set():
            try:  # Redis away: wait and retry, never stop (the bus is not the serving path)
                if not ready:
                    await self.ensure_group()
                    ready = True
                batch = await self.poll(ack=handled)
                handled = []
            except (RedisError, OSError) as e:  # unacked: redelivered later (ids dedupe)
                log.warning("bus: %s/%s cannot poll (%s); retrying", self.topic, self.group, e)
                handled = []
                await asyncio.sleep(min(1.0, self.block_ms / 1000))
                continue
            for d in batch:
                try:
                    await handler(d.event)
                except Exception as e:  # a handler's bug must not stop the consumer
                    log.warning("bus: handler failed on %s %s (%s): %s", d.topic, d.msg_id,
                                d.event.type, e)
                    if d.deliveries >= self.max_deliveries:
                        with contextlib.suppress(RedisError, OSError):  # else: reclaimed later
                            await self.dead_letter(d.msg_id, {"e": d.event.encode()},
                                                   f"handler failed {d.deliveries} times: {e}",
                                                   d.deliveries)
                    continue
                handled.append(d)
        try:
            await self.ack(*handled)
        except (RedisError, OSError) as e:  # redelivered later; handlers are idempotent
            log.warning("bus: ack of %d on %s failed: %s", len(handled), self.topic, e)


class Tail:
    """Reads every event of a topic after a given entry, without a group: each reader sees all
    of them and acknowledges nothing (Kafka's assigned partition without a group) — for the
    in-memory views that any number of processes keep, such as the origin's catalog. A malformed
    entry is skipped and counted (a reader without a group has no dead-letter duty)."""

    def __init__(self, client: aioredis.Redis, topic: str, after: str = "$", *,
                 batch: int = 100, block_s: float = 1.0):
        self.client, self.topic, self.after = client, topic, after
        self.batch, self.block_ms = batch, max(1, int(block_s * 1000))
        self.malformed = 0

    async def start_at_end(self) -> None:
        """Read only what is appended from now on (the id of the topic's last entry)."""
        last: Any = await self.client.xrevrange(self.topic, count=1)
        self.after = _s(last[0][0]) if last else "0-0"

    async def poll(self) -> list[Event]:
        """The next events (blocking up to `block_s`); `after` moves past them."""
        if self.after == "$":
            await self.start_at_end()
        resp: Any = await self.client.xread({self.topic: self.after}, count=self.batch,
                                            block=self.block_ms)
        out = []
        for _stream, entries in resp or []:
            for msg_id, fields in entries:
                self.after = _s(msg_id)
                try:
                    out.append(Event.decode(fields.get(b"e", fields.get("e"))))
                except MalformedEvent as e:
                    self.malformed += 1
                    log.warning("bus: %s %s skipped: %s", self.topic, self.after, e)
        return out


class SeenIds:
    """A bounded set of event ids already handled: makes an at-least-once handler effectively
    once (within the last `capacity` ids; a durable handler keys its own state by event id)."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        """True the first time an id is seen, False for a duplicate."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x
