"""The player's session core (sans-I/O): events with the time in, next actions out.

One object plays one session: it owns the ABR algorithm, the playback model
(:class:`~player_sim.playback.Playback`) and the QoE records, and never touches a socket or
a clock. A driver feeds it what happened, each event stamped with the session clock
``now_s``, and performs the actions it returns (aioquic's ``QuicConnection`` is the model):

* the trace simulator (:mod:`player_sim.sim`, ``--model default``) answers every action at
  once in virtual time from the link model (:mod:`player_sim.link`);
* ``abr play`` (:mod:`player_sim.player`) answers with real transfers on ``loop.time()``.

Both run the same rules, so every option of the :class:`~player_sim.model.Model` applies to
both identically. Only the Pensieve reproduction (``sim._run_pensieve``) keeps a loop of its own.

The lifecycle of a session, one table (``_EXPECTED``) saying which event each phase awaits::

    DECIDING --(buffer full / algorithm delay)--> IDLE --TimerFired--> REQUESTED
    DECIDING --------------------------------------------------------> REQUESTED
    REQUESTED --ResponseStarted--> RECEIVING --BytesReceived (a check is due)--> RECEIVING
    RECEIVING --BytesReceived (abandon)--> REQUESTED (the same segment, lower)
    REQUESTED / RECEIVING --RequestFailed (the driver sends it again)--> REQUESTED
    RECEIVING --SegmentDone--> AUDIO (audio covering the segment) --SegmentDone--> ... --> DECIDING
    DECIDING (every segment played) --> FINISHED

DECIDING is never waited in: the core decides as soon as it gets there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from player_sim import abr as abr_registry
from player_sim.abr.base import AbrContext, Decision, Download, PlayerState, Progress
from player_sim.errors import PlayerError
from player_sim.model import Model
from player_sim.playback import Event as PlaybackEvent
from player_sim.playback import Playback
from player_sim.qoe import REBUFFER_PENALTY, SegmentRecord, SessionResult, reward, summarise
from player_sim.video import Video

# -- events (driver -> core) -------------------------------------------------------------


@dataclass(frozen=True)
class ManifestLoaded:
    """The manifest and the segment sizes are in: the session clock starts."""

    now_s: float
    """Session clock."""
    video: Video
    """The ladder and every segment's size."""
    durations_s: tuple[float, ...] = ()
    """Each video segment's duration (empty: every one lasts ``video.segment_s``)."""
    audio_durations_s: tuple[float, ...] = ()
    """Each audio segment's duration (empty: no separate audio track)."""


@dataclass(frozen=True)
class TimerFired:
    """A :class:`Wait` ended."""

    now_s: float
    """Session clock."""


@dataclass(frozen=True)
class ResponseStarted:
    """The first byte of the request in flight arrived."""

    now_s: float
    """Session clock."""
    latency_s: float
    """Request sent to first byte."""


@dataclass(frozen=True)
class BytesReceived:
    """How much of the request in flight has arrived (answering an :class:`OfferProgress`)."""

    now_s: float
    """Session clock."""
    received_bytes: float
    """Bytes of the body received so far."""


@dataclass(frozen=True)
class SegmentDone:
    """The last byte of the request in flight arrived."""

    now_s: float
    """Session clock."""
    size_bytes: int
    """Bytes of the body."""


@dataclass(frozen=True)
class RequestFailed:
    """The request in flight failed; the driver sends it again from ``now_s`` (after its backoff)."""

    now_s: float
    """Session clock."""


Event = ManifestLoaded | TimerFired | ResponseStarted | BytesReceived | SegmentDone | RequestFailed

# -- actions (core -> driver) ------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """The algorithm chose a level for the next video segment (a notice; nothing to do)."""

    segment: int
    """Segment index."""
    level: int
    """Level chosen (after ``first_level`` / ``fixed_level``)."""
    buffer_s: float
    """Buffer at the decision."""
    delay_s: float
    """Idle time the algorithm asked for."""


@dataclass(frozen=True)
class Wait:
    """Idle until ``until_s``, then send :class:`TimerFired`."""

    until_s: float
    """Session clock."""


@dataclass(frozen=True)
class Request:
    """Fetch one segment; answer with :class:`ResponseStarted` and :class:`SegmentDone`."""

    kind: str
    """``video`` or ``audio``."""
    segment: int
    """Segment index in its track."""
    level: int
    """Video level (0 for audio)."""
    buffer_s: float
    """Buffer when the request is sent (CMCD ``bl``)."""
    startup: bool
    """Playback has not started yet (CMCD ``su``)."""


@dataclass(frozen=True)
class OfferProgress:
    """Send :class:`BytesReceived` at ``at_s`` if the request in flight has not ended by then."""

    at_s: float
    """Session clock."""


@dataclass(frozen=True)
class Abandon:
    """Stop the request in flight (a :class:`Request` for the same segment, lower, follows)."""

    segment: int
    """Segment index."""
    level: int
    """Level given up."""
    to_level: int
    """Level to refetch at."""
    received_bytes: float
    """Bytes of the abandoned body received."""


@dataclass(frozen=True)
class Finished:
    """Every segment is in: the session's result."""

    result: SessionResult
    """Summary and per-segment records."""


Action = Decided | Wait | Request | OfferProgress | Abandon | Finished | PlaybackEvent


class Phase(Enum):
    """Where a session is in its lifecycle (see the module docstring)."""

    NEW = "new"
    DECIDING = "deciding"
    IDLE = "idle"
    REQUESTED = "requested"
    RECEIVING = "receiving"
    AUDIO = "audio"
    FINISHED = "finished"


_EXPECTED: dict[Phase, tuple[type, ...]] = {
    Phase.NEW: (ManifestLoaded,),
    Phase.IDLE: (TimerFired,),
    Phase.REQUESTED: (ResponseStarted, RequestFailed),
    Phase.RECEIVING: (BytesReceived, SegmentDone, RequestFailed),
    Phase.AUDIO: (ResponseStarted, SegmentDone, RequestFailed),
}
"""The events each phase accepts; any other is the driver's bug (a :class:`PlayerError`)."""


@dataclass(frozen=True)
class CoreConfig:
    """What a session core is built with."""

    algorithm: str
    """ABR algorithm name (the registry's)."""
    model: Model
    """The session's rules."""
    trace_name: str = "-"
    """Label of the result."""
    fixed_level: int | None = None
    """Always fetch this level (-1: the top one) and never abandon (load tests)."""
    carried: Any = None
    """State handed over by the previous session's algorithm (see ``Abr.handover``)."""
    oracle: Any = None
    """The future, for an offline algorithm (``player_sim.sim.Oracle``); None for a real player."""


def session_segments(video: Video, model: Model) -> int:
    """How many segments a session plays."""
    return video.segments if model.max_segments is None else min(model.max_segments, video.segments)


def make_context(video: Video, model: Model, carried: Any = None, oracle: Any = None) -> AbrContext:
    """The context an algorithm is built with."""
    return AbrContext(video=video, max_buffer_s=model.max_buffer_s, segments=session_segments(video, model),
                      pensieve_quirks=model.pensieve_quirks, carried=carried, oracle=oracle)


class SessionCore:
    """One session's state machine (create, then :meth:`handle` a :class:`ManifestLoaded`)."""

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        self.model = config.model
        self.phase = Phase.NEW
        self.abr: abr_registry.Abr | None = None
        self.play = Playback(0.0)
        self.records: list[SegmentRecord] = []
        """One per segment played, in order."""
        self.abandoned = 0
        self.result: SessionResult | None = None
        self._video: Video | None = None
        self._durs: tuple[float, ...] = ()
        self._audio: tuple[float, ...] = ()
        self._n = 0
        self._k = 0
        self._level = 0
        self._prev_level: int | None = None
        self._request_t = 0.0
        self._stall_before = 0.0
        self._attempt_t = 0.0
        self._latency_s = 0.0
        self._next_check: float | None = None
        self._video_done_t = 0.0
        self._size = 0
        self._audio_next = 0
        self._audio_end = 0.0

    # -- the one entry point --------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        """Take one event; return what the driver must do next (in order)."""
        allowed = _EXPECTED.get(self.phase, ())
        if not isinstance(event, allowed):
            raise PlayerError(f"player core: {type(event).__name__} in phase {self.phase.value}")
        out: list[Action] = []
        if isinstance(event, ManifestLoaded):
            self._start(event, out)
            return out
        if isinstance(event, ResponseStarted):
            self._response_started(event, out)
            return out
        # Playback moves with every other event (never at the first byte: nothing reads it there).
        out.extend(self.play.advance(event.now_s))
        if isinstance(event, TimerFired):
            self._request(event.now_s, out)
        elif isinstance(event, BytesReceived):
            self._progress(event, out)
        elif isinstance(event, RequestFailed):
            self._attempt_t, self._next_check = event.now_s, None
            self.phase = Phase.REQUESTED if self.phase != Phase.AUDIO else Phase.AUDIO
        elif isinstance(event, SegmentDone):
            if self.phase == Phase.RECEIVING:
                self._video_done(event, out)
            else:
                self._audio_done(event, out)
        return out

    # -- transitions ----------------------------------------------------------------------
    def _start(self, ev: ManifestLoaded, out: list[Action]) -> None:
        cfg, model, video = self.config, self.model, ev.video
        self._video = video
        self._n = session_segments(video, model)
        self._durs = ev.durations_s or (video.segment_s,) * video.segments
        self._audio = ev.audio_durations_s
        if cfg.fixed_level is not None and cfg.fixed_level >= video.levels:
            raise PlayerError(f"--level {cfg.fixed_level}: the title has levels 0 to {video.levels - 1}")
        known = cfg.algorithm in abr_registry.names()  # an unknown name is make()'s error
        if known and cfg.oracle is None and not abr_registry.is_online(cfg.algorithm):
            raise PlayerError(f"{cfg.algorithm} is an offline algorithm (it needs the future); pick an online one")
        self.abr = abr_registry.make(cfg.algorithm, make_context(video, model, cfg.carried, cfg.oracle))
        threshold = model.startup_threshold_s if model.startup_threshold_s is not None else video.segment_s
        total = video.segment_s * self._n if not ev.durations_s else sum(self._durs[: self._n])
        self.play = Playback(min(threshold, total), start_s=ev.now_s)
        self._decide(ev.now_s, out)

    def _decide(self, now: float, out: list[Action]) -> None:
        video, model, play, cfg = self._video_checked(), self.model, self.play, self.config
        k = self._k
        if k >= self._n:
            self._finish(out)
            return
        prev = self._prev_level if self._prev_level is not None else 0
        decision: Decision = self._abr().choose(PlayerState(now, k, play.buffer_s, prev, play.playing))
        if cfg.fixed_level is not None:
            decision = Decision(cfg.fixed_level % video.levels)
        elif k == 0 and model.first_level is not None:
            decision = Decision(model.first_level, decision.delay_s)
        level = max(0, min(video.levels - 1, decision.level))
        self._level = level
        out.append(Decided(k, level, play.buffer_s, decision.delay_s))
        wait = decision.delay_s
        if play.playing:  # never let the buffer exceed the cap: wait until the new segment fits
            over = play.buffer_s + self._durs[k] - model.max_buffer_s
            if over > 0 and model.sleep_step_s > 0:
                over = math.ceil(over / model.sleep_step_s) * model.sleep_step_s
            wait = max(wait, over)
        if wait > 0 and play.playing:
            self.phase = Phase.IDLE
            out.append(Wait(now + wait))
            return
        self._request(now, out)

    def _request(self, now: float, out: list[Action]) -> None:
        """The first attempt at the current segment."""
        self._stall_before = self.play.stall_total_s
        self._request_t = now
        self._attempt(now, out)

    def _attempt(self, now: float, out: list[Action]) -> None:
        self.phase = Phase.REQUESTED
        self._attempt_t, self._next_check = now, None
        startup = not self.play.playing and self.play.startup_s is None
        out.append(Request("video", self._k, self._level, self.play.buffer_s, startup))

    def _response_started(self, ev: ResponseStarted, out: list[Action]) -> None:
        if self.phase == Phase.AUDIO:
            return
        self.phase = Phase.RECEIVING
        self._latency_s = ev.latency_s
        if self.model.abandonment and self._level > 0 and self.config.fixed_level is None:
            self._next_check = ev.now_s + self.model.abandon_check_s
            out.append(OfferProgress(self._next_check))

    def _progress(self, ev: BytesReceived, out: list[Action]) -> None:
        if self._next_check is None:
            return  # unasked: no check is due
        if ev.now_s < self._next_check:  # early (a timer's rounding): ask again
            out.append(OfferProgress(self._next_check))
            return
        k, level, now = self._k, self._level, ev.now_s
        size = self._video_checked().sizes_bytes[level][k]
        elapsed = now - self._attempt_t
        new = self._abr().check_abandon(Progress(k, level, size, ev.received_bytes, elapsed, self.play.buffer_s))
        if new is not None and new < level:
            self._abr().report_download(Download(k, level, int(ev.received_bytes), elapsed, self.play.buffer_s,
                                                 True, self._latency_s))
            self.abandoned += 1
            out.append(Abandon(k, level, int(new), ev.received_bytes))
            self._level = int(new)
            self._attempt(now, out)
            return
        self._next_check += self.model.abandon_check_s
        out.append(OfferProgress(self._next_check))

    def _video_done(self, ev: SegmentDone, out: list[Action]) -> None:
        self._video_done_t, self._size, self._next_check = ev.now_s, ev.size_bytes, None
        self.phase = Phase.AUDIO
        self._next_audio(ev.now_s, out)

    def _audio_done(self, ev: SegmentDone, out: list[Action]) -> None:
        self._audio_end += self._audio[self._audio_next]
        self._audio_next += 1
        self._next_audio(ev.now_s, out)

    def _next_audio(self, now: float, out: list[Action]) -> None:
        """Request the audio that covers the video so far, then close the segment."""
        k, j = self._k, self._audio_next
        video_end = sum(self._durs[: k + 1])
        whole = k == self._n - 1 and self._n == len(self._durs)  # the title's last segment: all the rest
        if j < len(self._audio) and (self._audio_end < video_end - 1e-6 or whole):
            out.append(Request("audio", j, 0, self.play.buffer_s, self.play.startup_s is None))
            return
        self._segment_added(now, out)

    def _segment_added(self, now: float, out: list[Action]) -> None:
        k, level, play = self._k, self._level, self.play
        out.extend(play.segment_added(now, self._durs[k], last=k == self._n - 1))
        kbps = [b / 1000 for b in self._video_checked().bitrates_bps]
        rebuf = play.stall_total_s - self._stall_before
        prev_kbps = kbps[self._prev_level] if self._prev_level is not None else kbps[level]
        self.records.append(SegmentRecord(k, level, kbps[level], rebuf, play.buffer_s, now, now - self._request_t,
                                          reward(kbps[level], prev_kbps, rebuf)))
        self._abr().report_download(Download(k, level, self._size, self._video_done_t - self._request_t,
                                             play.buffer_s, latency_s=self._latency_s))
        self._prev_level = level
        self._k += 1
        self.phase = Phase.DECIDING
        self._decide(now, out)

    def _finish(self, out: list[Action]) -> None:
        startup = self.play.startup_s or 0.0
        self.result = summarise(self._abr().name, self.config.trace_name, self.records,
                                self.model.skip_first_in_score, startup_s=startup, abandoned=self.abandoned,
                                extra_penalty=REBUFFER_PENALTY * startup)
        self.phase = Phase.FINISHED
        out.append(Finished(self.result))

    def _abr(self) -> abr_registry.Abr:
        if self.abr is None:
            raise PlayerError("player core: no manifest loaded yet")
        return self.abr

    def _video_checked(self) -> Video:
        if self._video is None:
            raise PlayerError("player core: no manifest loaded yet")
        return self._video
