"""The aggregator's pure core: beacons in (with the caller's clock), figures out.

Beacons carry a session's totals so far, so the book keeps each session's last beacon and adds
only the increase to its group's counters: a repeated or reordered beacon (``seq`` not above the
last one) changes nothing, and a lost one is made up by the next. A group is (title, edge, ABR,
protocol); the dashboard and the JSON API sum groups along one dimension.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

DIMENSIONS = ("title", "edge", "abr", "protocol")
"""What the figures are broken down by (Prometheus labels, dashboard tabs)."""
STARTUP_BUCKETS_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
"""Upper bounds of the startup-delay histogram (plus +Inf)."""
OTHER = "_other"
"""The group every beacon goes to once ``max_groups`` groups exist (bounded label sets)."""

Key = tuple[str, str, str, str]
_CUMULATIVE = ("stalls", "stall_s", "played_s", "switches", "errors")


class Outcome(Enum):
    """What a beacon did to the book."""

    NEW = "new"
    """The session's first beacon."""
    UPDATED = "updated"
    STALE = "stale"
    """Not newer than the session's last beacon (a repeat or a late one): ignored."""


@dataclass
class Totals:
    """Counters of one group (never decrease)."""

    sessions: int = 0
    """Sessions seen."""
    ended: int = 0
    """Sessions whose final beacon arrived."""
    beacons: int = 0
    stalls: int = 0
    stall_s: float = 0.0
    played_s: float = 0.0
    switches: int = 0
    errors: int = 0
    startup_count: int = 0
    startup_sum_s: float = 0.0
    startup_buckets: list[int] = field(default_factory=lambda: [0] * (len(STARTUP_BUCKETS_S) + 1))
    """Non-cumulative counts per bucket; the last is beyond the largest bound."""

    def add(self, other: Totals) -> None:
        for f in fields(self):
            if f.name == "startup_buckets":
                self.startup_buckets = [a + b for a, b in zip(self.startup_buckets,
                                                              other.startup_buckets, strict=True)]
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class _Session:
    key: Key
    seq: int
    last: dict[str, float]
    startup_seen: bool
    bitrate_bps: float
    buffer_s: float
    updated_s: float
    final: bool


@dataclass
class Live:
    """Figures of the sessions active now in one group (or one dimension's value)."""

    active: int = 0
    bitrate_sum_bps: float = 0.0
    buffer_sum_s: float = 0.0

    @property
    def bitrate_bps(self) -> float | None:
        return self.bitrate_sum_bps / self.active if self.active else None

    @property
    def buffer_s(self) -> float | None:
        return self.buffer_sum_s / self.active if self.active else None


def key_of(beacon: Mapping[str, Any]) -> Key:
    return (str(beacon["title"]), str(beacon.get("edge") or "unknown"), str(beacon["abr"]),
            str(beacon["protocol"]))


class QoeBook:
    """Sessions and per-group totals; ``apply`` a validated beacon, read ``totals``/``live``."""

    def __init__(self, active_s: float = 30.0, forget_s: float = 600.0,
                 max_sessions: int = 100_000, max_groups: int = 1000) -> None:
        self.active_s = active_s
        """A session counts as active for this long after its last beacon (unless it ended)."""
        self.forget_s = forget_s
        """Sessions silent this long are forgotten (their totals stay in their group)."""
        self.max_sessions = max_sessions
        self.max_groups = max_groups
        self.totals: dict[Key, Totals] = {}
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        self.stale = 0
        """Beacons ignored as not newer than their session's last one."""

    def apply(self, beacon: Mapping[str, Any], now_s: float) -> Outcome:
        sid, seq = str(beacon["session_id"]), int(beacon["seq"])
        key = key_of(beacon)
        if key not in self.totals and len(self.totals) >= self.max_groups:
            key = (OTHER,) * 4
        s = self.sessions.get(sid)
        if s is not None and seq <= s.seq:
            self.stale += 1
            return Outcome.STALE
        totals = self.totals.setdefault(key, Totals())
        totals.beacons += 1
        outcome = Outcome.UPDATED
        if s is None:
            outcome = Outcome.NEW
            totals.sessions += 1
            s = _Session(key, seq, dict.fromkeys(_CUMULATIVE, 0.0), False, 0.0, 0.0, now_s, False)
            self.sessions[sid] = s
        for name in _CUMULATIVE:
            value = float(beacon.get(name) or 0.0)
            grown = value - s.last[name]
            if grown > 0:
                setattr(totals, name, getattr(totals, name) + (int(grown) if name in (
                    "stalls", "switches", "errors") else grown))
                s.last[name] = value
        startup = beacon.get("startup_s")
        if startup is not None and not s.startup_seen:
            s.startup_seen = True
            totals.startup_count += 1
            totals.startup_sum_s += float(startup)
            i = next((i for i, b in enumerate(STARTUP_BUCKETS_S) if startup <= b), len(STARTUP_BUCKETS_S))
            totals.startup_buckets[i] += 1
        if beacon.get("final") and not s.final:
            s.final = True
            totals.ended += 1
        s.key, s.seq, s.updated_s = key, seq, now_s
        s.bitrate_bps, s.buffer_s = float(beacon.get("bitrate_bps") or 0), float(beacon.get("buffer_s") or 0)
        self.sessions.move_to_end(sid)
        self.expire(now_s)
        return outcome

    def expire(self, now_s: float) -> None:
        """Forget sessions silent for ``forget_s`` and the oldest beyond ``max_sessions``."""
        while self.sessions:
            sid, s = next(iter(self.sessions.items()))
            if len(self.sessions) <= self.max_sessions and now_s - s.updated_s < self.forget_s:
                break
            del self.sessions[sid]

    def live(self, now_s: float) -> dict[Key, Live]:
        """Active sessions per group: not ended, a beacon within ``active_s``."""
        out: dict[Key, Live] = {}
        for s in reversed(self.sessions.values()):  # newest first: stop at the first old one
            if now_s - s.updated_s > self.active_s:
                break
            if s.final:
                continue
            live = out.setdefault(s.key, Live())
            live.active += 1
            live.bitrate_sum_bps += s.bitrate_bps
            live.buffer_sum_s += s.buffer_s
        return out

    def rollup(self, dimension: str, now_s: float) -> dict[str, dict[str, Any]]:
        """Figures summed over the groups that share a value of ``dimension``."""
        i = DIMENSIONS.index(dimension)
        totals: dict[str, Totals] = {}
        lives: dict[str, Live] = {}
        for key, t in self.totals.items():
            totals.setdefault(key[i], Totals()).add(t)
        for key, lv in self.live(now_s).items():
            agg = lives.setdefault(key[i], Live())
            agg.active += lv.active
            agg.bitrate_sum_bps += lv.bitrate_sum_bps
            agg.buffer_sum_s += lv.buffer_sum_s
        return {value: figures(t, lives.get(value, Live())) for value, t in sorted(totals.items())}


def figures(t: Totals, live: Live) -> dict[str, Any]:
    """The JSON API's figures for one group or dimension value."""
    watched = t.played_s + t.stall_s
    return {
        "active": live.active,
        "bitrate_bps": None if live.bitrate_bps is None else round(live.bitrate_bps),
        "buffer_s": None if live.buffer_s is None else round(live.buffer_s, 3),
        "sessions": t.sessions, "ended": t.ended, "beacons": t.beacons,
        "stalls": t.stalls, "stall_s": round(t.stall_s, 3), "played_s": round(t.played_s, 3),
        "rebuffer_ratio": round(t.stall_s / watched, 5) if watched > 0 else None,
        "switches": t.switches, "errors": t.errors,
        "startup_mean_s": round(t.startup_sum_s / t.startup_count, 3) if t.startup_count else None,
    }


class History:
    """The dashboard's time series: every ``sample()`` appends each dimension value's active
    sessions, mean bitrate and rebuffer ratio over the last interval; ``points`` are kept."""

    def __init__(self, points: int = 300) -> None:
        self.t: deque[float] = deque(maxlen=points)
        self.series: dict[str, dict[str, dict[str, deque[float | None]]]] = {d: {} for d in DIMENSIONS}
        self._prev: dict[str, dict[str, tuple[float, float]]] = {d: {} for d in DIMENSIONS}

    def sample(self, book: QoeBook, now_s: float) -> None:
        n = len(self.t)
        self.t.append(round(now_s, 3))
        for dim in DIMENSIONS:
            rows = book.rollup(dim, now_s)
            for value, f in rows.items():
                series = self.series[dim].setdefault(value, {
                    k: deque([None] * n, maxlen=self.t.maxlen)
                    for k in ("active", "bitrate_bps", "rebuffer_ratio")})
                stall, played = f["stall_s"], f["played_s"]
                p_stall, p_played = self._prev[dim].get(value, (0.0, 0.0))
                d_watch = (stall - p_stall) + (played - p_played)
                self._prev[dim][value] = (stall, played)
                series["active"].append(f["active"])
                series["bitrate_bps"].append(f["bitrate_bps"])
                series["rebuffer_ratio"].append(round((stall - p_stall) / d_watch, 5)
                                                if d_watch > 0 else None)
            for value, series in self.series[dim].items():
                if value not in rows:
                    for s in series.values():
                        s.append(None)

    def to_dict(self) -> dict[str, Any]:
        return {"t": list(self.t), "by": {d: {v: {k: list(s) for k, s in ser.items()}
                                              for v, ser in vals.items()}
                                          for d, vals in self.series.items()}}
