"""The ABR interface and registry (pure: no I/O, no globals, no clock).

The per-segment messages (:class:`PlayerState`, :class:`Decision`, :class:`Download`,
:class:`Progress`) are immutable named tuples rather than frozen dataclasses: a sweep
builds millions of them, and a named tuple is built 2-3x faster.

The shape follows sabre (Spiteri et al., UMass-LIDS/sabre): an algorithm object is made
per session, is asked for a level before each segment (:meth:`Abr.choose`), is told about
every finished download (:meth:`Abr.report_download`) and may abandon a download in
progress (:meth:`Abr.check_abandon`). Every input is an argument; the same object drives
the trace simulator (virtual time) and the real HTTP player (wall time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from player_sim.errors import PlayerError
from player_sim.video import Video


@dataclass(frozen=True)
class AbrContext:
    """What an algorithm knows before the session starts."""

    video: Video
    """The ladder and every segment's size per level."""
    max_buffer_s: float
    """The player's buffer cap, seconds."""
    segments: int
    """Number of segments the session plays (may be fewer than the video has)."""
    pensieve_quirks: bool = False
    """Reproduce the Pensieve reference scripts' quirks (see the data README)."""
    carried: Any = None
    """State handed over by the previous session's algorithm (see :meth:`Abr.handover`)."""
    oracle: Any = None
    """For offline algorithms only: the future (``player_sim.sim.Oracle``); None for a real player."""


class PlayerState(NamedTuple):
    """The player's state when a decision is due."""

    now_s: float
    """Session clock (virtual or wall), seconds since the session started."""
    segment: int
    """Index of the segment to fetch next."""
    buffer_s: float
    """Media buffered ahead of the playhead, seconds."""
    last_level: int
    """Level of the previous segment (the first segment's default level before any)."""
    playing: bool = True
    """Whether playback has started and is not stalled."""


class Download(NamedTuple):
    """A finished (or abandoned) segment download."""

    segment: int
    """Segment index."""
    level: int
    """Level fetched."""
    size_bytes: int
    """Bytes received."""
    time_s: float
    """From request to last byte, seconds (includes request latency / RTT)."""
    buffer_s: float
    """Buffer level once the segment was added (after any idle wait), seconds."""
    abandoned: bool = False
    """True when the download was cut short and will be refetched."""
    latency_s: float = 0.0
    """Request to first byte (RTT), seconds, when known; part of ``time_s``."""

    @property
    def throughput_bps(self) -> float:
        """Measured throughput, bits per second."""
        return self.size_bytes * 8 / self.time_s if self.time_s > 0 else 0.0


class Progress(NamedTuple):
    """A download in progress, offered to :meth:`Abr.check_abandon`."""

    segment: int
    """Segment index."""
    level: int
    """Level being fetched."""
    size_bytes: int
    """Full size of the segment."""
    received_bytes: float
    """Bytes received so far."""
    elapsed_s: float
    """Time since the request, seconds."""
    buffer_s: float
    """Buffer level now, seconds."""


class Decision(NamedTuple):
    """An algorithm's answer: which level, and how long to wait before requesting it."""

    level: int
    """Level to fetch."""
    delay_s: float = 0.0
    """Idle time before the request (e.g. BOLA when the buffer is above its target)."""


class Abr:
    """Base class: subclasses override :meth:`choose` and usually :meth:`report_download`."""

    name = "abr"
    reference = ""

    def __init__(self, ctx: AbrContext) -> None:
        self.ctx = ctx
        self.video = ctx.video

    def choose(self, state: PlayerState) -> Decision:
        """The level (and idle delay) for segment ``state.segment``."""
        raise NotImplementedError

    def report_download(self, download: Download) -> None:
        """Learn from a finished download."""

    def handover(self) -> Any:
        """State the next session's algorithm starts from (None: every session starts afresh).

        Only the reproduction of a reference script uses this: Pensieve's ``mpc.py`` keeps its
        error history in globals across the sessions of a sweep.
        """
        return None

    def check_abandon(self, progress: Progress) -> int | None:
        """A lower level to refetch at instead of finishing this download, or None to go on.

        The default is the "clear stall" rule (as in dash.js's AbandonRequestsRule and sabre):
        after at least 0.5 s, if the rest at the rate seen so far would outlast the buffer
        while a lower level's whole segment would not, refetch at the highest such level.
        """
        return stall_abandon(self.video, progress)


def stall_abandon(video: Video, p: Progress, min_elapsed_s: float = 0.5) -> int | None:
    """The "clear stall" abandonment rule shared by the online algorithms."""
    if p.elapsed_s < min_elapsed_s or p.received_bytes <= 0 or p.level == 0:
        return None
    rate = p.received_bytes / p.elapsed_s
    if (p.size_bytes - p.received_bytes) / rate <= p.buffer_s:
        return None
    for level in range(p.level - 1, -1, -1):
        if level == 0 or video.size_bytes(level, p.segment) / rate < p.buffer_s:
            return level
    return None


Factory = Callable[[AbrContext], Abr]
_REGISTRY: dict[str, tuple[Factory, str, bool]] = {}


def register(name: str, reference: str, online: bool = True) -> Callable[[type[Abr]], type[Abr]]:
    """Class decorator that makes an algorithm available by ``name``."""

    def wrap(cls: type[Abr]) -> type[Abr]:
        cls.name = name
        cls.reference = reference
        _REGISTRY[name] = (cls, reference, online)
        return cls

    return wrap


def register_factory(name: str, reference: str, factory: Factory, online: bool = True) -> None:
    """Register a variant built by a function (e.g. a class with other parameters)."""
    _REGISTRY[name] = (factory, reference, online)


# How tables list the algorithms: the classics by family, ours, then the offline bound.
DISPLAY_ORDER = ("throughput", "bb", "bola", "bola-e", "dynamic", "robustmpc", "robustmpc-fixed", "marathon", "optimal")


def names() -> list[str]:
    """Registered algorithm names, in display order."""
    rank = {n: i for i, n in enumerate(DISPLAY_ORDER)}
    return sorted(_REGISTRY, key=lambda n: rank.get(n, len(rank)))


def reference(name: str) -> str:
    """The paper or code an algorithm follows."""
    return _REGISTRY[name][1]


def is_online(name: str) -> bool:
    """False for algorithms that see the future (the offline optimum)."""
    return _REGISTRY[name][2]


def make(name: str, ctx: AbrContext) -> Abr:
    """A fresh algorithm object for one session."""
    if name not in _REGISTRY:
        raise PlayerError(f"unknown ABR algorithm {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name][0](ctx)


def parse_names(spec: str) -> list[str]:
    """Turn ``"bb,bola"`` or ``"all"`` into a checked list of names."""
    if spec.strip() == "all":
        return names()
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    if not chosen:
        raise PlayerError("no ABR algorithm named; use --abr NAME[,NAME...] or --abr all")
    for n in chosen:
        if n not in _REGISTRY:
            raise PlayerError(f"unknown ABR algorithm {n!r}; known: {', '.join(names())}")
    return list(dict.fromkeys(chosen))
