"""Which edges serve a title, in order: rendezvous hashing with bounded load over the edges
that are up, weighted by health. Pure (the caller passes the time).

Placement: every `recompute_s`, titles are placed one by one, the most watched first, each on
the first edge of its rendezvous order whose load (sessions already placed there) is under
`ceil(c × mean)` (:func:`steer.hrw.assign`); a title's priority is that edge, then the rest
of its rendezvous order. Demand is the number of sessions (and redirected clients) seen for
a title within `window_s`. So a title's objects stay on one edge while it is not hot, a hot
title's neighbours spill to the next edges, and an edge that goes away moves only the titles
it held (plus, when the load bound binds, a few that spill).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from steer import hrw
from steer.health import HealthView

POLICIES = ("hrw", "random")
MAX_SESSIONS = 100_000
MAX_TITLES = 100_000


@dataclass
class SteeredSession:
    """One player session that loaded a steered manifest."""

    title: str
    kind: str
    """``hls`` or ``dash``."""
    pathways: tuple[str, ...]
    """The pathways its manifest carried (others reach it as PATHWAY-CLONES)."""
    seen_s: float
    pathway: str = ""
    """The pathway it reported last (``_HLS_pathway``), or its first one."""
    throughput_bps: float = 0.0


@dataclass
class Decisions:
    """Counters of what the steerer answered (for /metrics)."""

    manifests: Counter[str] = field(default_factory=Counter)
    """Steered manifests served, by kind."""
    steering: Counter[str] = field(default_factory=Counter)
    """Steering manifests answered, by first pathway."""
    moved: int = 0
    """Steering answers whose first pathway was not the session's reported pathway."""
    redirects: Counter[str] = field(default_factory=Counter)
    """302 answers, by edge."""


class Steerer:
    """The fleet's edges, their health and the sessions steered to them."""

    def __init__(self, edges: dict[str, str], health: HealthView, *, c: float = 1.25,
                 window_s: float = 30.0, recompute_s: float = 1.0, policy: str = "hrw",
                 replicas: int = 1) -> None:
        if not edges:
            raise ValueError("a fleet needs at least one edge")
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")
        self.policy, self.replicas = policy, max(1, replicas)
        self.edges = dict(edges)
        """name -> base URL."""
        self.health = health
        self.c, self.window_s, self.recompute_s = c, window_s, recompute_s
        self.sessions: OrderedDict[str, SteeredSession] = OrderedDict()
        self._clients: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._placed: dict[str, str] = {}
        self._placed_at = float("-inf")
        self._placed_up: tuple[str, ...] = ()
        self.decisions = Decisions()

    # -- placement ----------------------------------------------------------------------
    def up(self, now_s: float) -> list[str]:
        return self.health.up(now_s)

    def demand(self, now_s: float) -> Counter[str]:
        """Sessions (and redirected clients) per title within the window."""
        horizon = now_s - self.window_s
        while self.sessions and next(iter(self.sessions.values())).seen_s < horizon:
            self.sessions.popitem(last=False)
        while self._clients and next(iter(self._clients.values())) < horizon:
            self._clients.popitem(last=False)
        d: Counter[str] = Counter(s.title for s in self.sessions.values())
        d.update(title for title, _client in self._clients)
        return d

    def _place(self, now_s: float) -> None:
        up = tuple(self.up(now_s))
        if up == self._placed_up and now_s - self._placed_at < self.recompute_s:
            return
        weights = self.health.weights(now_s)
        loads = dict.fromkeys(up, 0.0)
        placed: dict[str, str] = {}
        for title, n in sorted(self.demand(now_s).items(), key=lambda kv: (-kv[1], kv[0])):
            first = hrw.assign(title, up, loads, c=self.c, weights=weights)
            if first:
                placed[title] = first[0]
                loads[first[0]] += n
        self._placed, self._placed_at, self._placed_up = placed, now_s, up

    def priority(self, title: str, now_s: float, key: str = "") -> list[str]:
        """The edges that are up, most preferred first, for `title` and the session or
        client `key`: the title's placement (policy ``hrw``; with replicas > 1 the key picks
        one of the title's first edges), or the key's own order (``random``: any edge, as
        DNS round-robin, stable for one session)."""
        self._place(now_s)
        up, weights = self._placed_up, self.health.weights(now_s)
        if self.policy == "random":
            return hrw.order(f"{key}\x00{title}", up, weights)
        order = hrw.order(title, up, weights)
        first = self._placed.get(title)
        if first is not None and first in up:
            order = [first, *(n for n in order if n != first)]
        r = min(self.replicas, len(order))
        if r > 1 and key:
            k = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % r
            order = order[k:r] + order[:k] + order[r:]
        return order

    # -- sessions -----------------------------------------------------------------------
    def open_session(self, title: str, kind: str, now_s: float) -> tuple[str, list[str]]:
        """A new session for a steered manifest: its id and its pathways, in priority order."""
        sid = uuid.uuid4().hex[:16]
        order = self.priority(title, now_s, sid)
        self.sessions[sid] = SteeredSession(title, kind, tuple(order), now_s, order[0] if order else "")
        if len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        self.decisions.manifests[kind] += 1
        return sid, order

    def steer(self, title: str, sid: str | None, kind: str, reported: list[str],
              throughput: list[float], now_s: float) -> tuple[list[str], SteeredSession | None]:
        """A steering answer: the pathway priority for a session (which it refreshes)."""
        order = self.priority(title, now_s, sid or "")
        s = self.sessions.get(sid) if sid else None
        if s is not None and s.title == title:
            self.sessions.move_to_end(sid)  # type: ignore[arg-type]
            s.seen_s = now_s
            if reported:
                s.pathway = reported[0]
            if throughput:
                s.throughput_bps = throughput[0]
        elif s is not None:
            s = None
        if order:
            self.decisions.steering[order[0]] += 1
            if reported and reported[0] != order[0]:
                self.decisions.moved += 1
        return order, s

    def route(self, title: str, client: str, now_s: float) -> str | None:
        """The edge a plain (redirected) request for `title` goes to; counts its demand."""
        key = (title, client)
        self._clients[key] = now_s
        self._clients.move_to_end(key)
        if len(self._clients) > MAX_SESSIONS:
            self._clients.popitem(last=False)
        order = self.priority(title, now_s, client)
        if not order:
            return None
        self.decisions.redirects[order[0]] += 1
        return order[0]
