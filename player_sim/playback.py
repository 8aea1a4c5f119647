"""The player's buffer and playback model (pure: events and clock values in, events out).

The caller owns the clock: the trace simulator passes virtual time, the real HTTP player
passes ``loop.time()``. The model never reads a clock itself.

States: *waiting* (before the startup threshold), *playing*, *stalled*, *ended*.
Playback starts once ``startup_threshold_s`` of media is buffered (or the whole stream is
in), stalls when the buffer runs dry and resumes under the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlaybackStarted:
    """Playback started for the first time."""

    at_s: float
    """Clock value."""


@dataclass(frozen=True)
class StallStarted:
    """The buffer ran dry during playback."""

    at_s: float
    """Clock value."""


@dataclass(frozen=True)
class StallEnded:
    """Playback resumed after a stall."""

    at_s: float
    """Clock value."""
    duration_s: float
    """Length of the stall."""


@dataclass(frozen=True)
class PlaybackEnded:
    """The last media was played out."""

    at_s: float
    """Clock value."""


Event = PlaybackStarted | StallStarted | StallEnded | PlaybackEnded


class Playback:
    """Buffer level, play state and stall accounting for one session."""

    def __init__(self, startup_threshold_s: float, start_s: float = 0.0) -> None:
        self.startup_threshold_s = startup_threshold_s
        self.now_s = start_s
        self.start_s = start_s
        self.buffer_s = 0.0
        """Media buffered ahead of the playhead."""
        self.state = "waiting"
        """One of waiting, playing, stalled, ended."""
        self.startup_s: float | None = None
        """Time from the session start to first playback (None until it starts)."""
        self.stall_total_s = 0.0
        """Total stall time after startup (an ongoing stall counts up to ``now_s``)."""
        self.stalls = 0
        """Number of stalls."""
        self._stall_since = 0.0
        self._complete = False

    @property
    def playing(self) -> bool:
        """Whether the playhead is moving."""
        return self.state == "playing"

    def advance(self, now_s: float) -> list[Event]:
        """Move the clock to ``now_s`` (never backwards), playing out buffered media."""
        events: list[Event] = []
        dt = max(0.0, now_s - self.now_s)
        if self.state == "playing" and dt > 0:
            if self.buffer_s > dt:
                self.buffer_s -= dt
            else:
                dry_at = self.now_s + self.buffer_s
                self.buffer_s = 0.0
                if self._complete:
                    self.state = "ended"
                    events.append(PlaybackEnded(dry_at))
                else:
                    self.state = "stalled"
                    self.stalls += 1
                    self._stall_since = dry_at
                    events.append(StallStarted(dry_at))
                    self.stall_total_s += now_s - dry_at
        elif self.state == "stalled":
            self.stall_total_s += dt
        self.now_s = max(self.now_s, now_s)
        return events

    def segment_added(self, now_s: float, duration_s: float, last: bool = False) -> list[Event]:
        """A segment of ``duration_s`` arrived at ``now_s``; ``last`` when it completes the stream."""
        events = self.advance(now_s)
        self.buffer_s += duration_s
        self._complete = self._complete or last
        ready = self.buffer_s >= self.startup_threshold_s or self._complete
        if self.state == "waiting" and ready:
            self.state = "playing"
            self.startup_s = self.now_s - self.start_s
            events.append(PlaybackStarted(self.now_s))
        elif self.state == "stalled" and ready:
            self.state = "playing"
            events.append(StallEnded(self.now_s, self.now_s - self._stall_since))
        return events

    def time_to_drain_s(self, target_buffer_s: float) -> float:
        """How long until the buffer falls to ``target_buffer_s`` if playback goes on."""
        if self.state != "playing":
            return 0.0
        return max(0.0, self.buffer_s - target_buffer_s)
