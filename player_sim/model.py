"""Simulation models: the Pensieve chunk-level model and the richer default model."""

from __future__ import annotations

from dataclasses import dataclass

from player_sim.errors import PlayerError


@dataclass(frozen=True)
class Model:
    """Rules of a simulated session (see the README section "Simulating ABR")."""

    name: str
    """``pensieve`` or ``default``."""
    max_buffer_s: float = 60.0
    """Buffer cap; above it the player idles."""
    payload_portion: float = 0.95
    """Share of the trace's throughput that carries segment bytes."""
    rtt_s: float = 0.08
    """Per-request latency when the trace gives none."""
    use_trace_latency: bool = False
    """Take per-request latency from the trace (sabre traces) instead of ``rtt_s``."""
    rtt_advances_clock: bool = False
    """Whether the request latency takes trace time (Pensieve's model adds it to the delay only)."""
    sleep_step_s: float = 0.5
    """Granularity of idle waits when the buffer is full."""
    first_level: int | None = 1
    """Level of the first segment, or None to let the algorithm choose."""
    max_segments: int | None = 48
    """Segments per session (None: the whole video)."""
    skip_first_in_score: bool = True
    """Leave segment 0 out of the score (Pensieve's rule)."""
    startup_threshold_s: float | None = None
    """Buffer needed to start or resume playback (None: Pensieve's instant model)."""
    abandonment: bool = False
    """Offer downloads in progress to the algorithm's ``check_abandon``."""
    abandon_check_s: float = 0.25
    """How often a download in progress is offered for abandonment."""
    pensieve_quirks: bool = True
    """Reproduce the reference scripts' quirks in robustMPC."""


def pensieve(max_buffer_s: float = 60.0) -> Model:
    """Pensieve's ``fixed_env.py`` rules (data README)."""
    return Model(name="pensieve", max_buffer_s=max_buffer_s)


def default(max_buffer_s: float = 60.0) -> Model:
    """The richer model: trace latency, startup threshold, buffer cap, abandonment."""
    return Model(
        name="default",
        max_buffer_s=max_buffer_s,
        payload_portion=0.95,
        rtt_s=0.08,
        use_trace_latency=True,
        rtt_advances_clock=True,
        sleep_step_s=0.0,
        first_level=None,
        max_segments=None,
        skip_first_in_score=False,
        startup_threshold_s=4.0,
        abandonment=True,
        pensieve_quirks=False,
    )


def by_name(name: str, max_buffer_s: float = 60.0) -> Model:
    """The model called ``name``."""
    if name == "pensieve":
        return pensieve(max_buffer_s)
    if name == "default":
        return default(max_buffer_s)
    raise PlayerError(f"unknown model {name!r}; use pensieve or default")
