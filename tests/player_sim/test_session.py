"""The session core's transitions, driven by hand in memory (events in, actions out)."""

from __future__ import annotations

import dataclasses

import pytest

from player_sim import model
from player_sim.errors import PlayerError
from player_sim.playback import PlaybackStarted, StallEnded, StallStarted
from player_sim.session import (
    Abandon,
    BytesReceived,
    CoreConfig,
    Decided,
    Finished,
    ManifestLoaded,
    OfferProgress,
    Phase,
    Request,
    RequestFailed,
    ResponseStarted,
    SegmentDone,
    SessionCore,
    TimerFired,
    Wait,
)
from player_sim.video import Video


def core(algorithm: str = "bb", **options: object) -> SessionCore:
    return SessionCore(CoreConfig(algorithm, dataclasses.replace(model.default(), **options), "t"))


def test_a_session_starts_with_a_decision_and_a_request(tiny_video: Video) -> None:
    c = core()
    out = c.handle(ManifestLoaded(0.0, tiny_video))
    # bb: an empty buffer is below the 5-s reservoir -> level 0; playback has not started (CMCD su)
    assert out == [Decided(0, 0, 0.0, 0.0), Request("video", 0, 0, 0.0, True)]
    assert c.phase == Phase.REQUESTED
    assert c.handle(ResponseStarted(0.1, 0.1)) == []  # level 0: nothing lower to abandon to
    out = c.handle(SegmentDone(1.0, 500_000))
    # 4 s buffered reaches the 4-s startup threshold: playback starts, the next decision follows
    assert out[0] == PlaybackStarted(1.0)
    assert out[1:] == [Decided(1, 0, 4.0, 0.0), Request("video", 1, 0, 4.0, False)]
    r = c.records[0]
    assert (r.segment, r.level, r.time_s, r.download_s, r.rebuffer_s) == (0, 0, 1.0, 1.0, 0.0)


def test_first_level_and_fixed_level_are_the_cores_options(tiny_video: Video) -> None:
    out = core(first_level=2).handle(ManifestLoaded(0.0, tiny_video))
    assert out[-1] == Request("video", 0, 2, 0.0, True)
    fixed = SessionCore(CoreConfig("bb", model.default(), fixed_level=-1))
    assert fixed.handle(ManifestLoaded(0.0, tiny_video))[-1].level == 2  # type: ignore[union-attr]
    assert fixed.handle(ResponseStarted(0.1, 0.1)) == []  # a fixed level is never abandoned
    with pytest.raises(PlayerError, match="--level 3: the title has levels 0 to 2"):
        SessionCore(CoreConfig("bb", model.default(), fixed_level=3)).handle(ManifestLoaded(0.0, tiny_video))
    with pytest.raises(PlayerError, match="optimal is an offline algorithm"):
        core("optimal").handle(ManifestLoaded(0.0, tiny_video))


def test_a_full_buffer_waits_until_the_next_segment_fits(tiny_video: Video) -> None:
    c = core(max_buffer_s=6.0)
    c.handle(ManifestLoaded(0.0, tiny_video))
    c.handle(ResponseStarted(0.0, 0.0))
    out = c.handle(SegmentDone(1.0, 500_000))  # 4 s buffered, playing; 4 + 4 > 6: wait 2 s
    assert out[-1] == Wait(3.0) and c.phase == Phase.IDLE
    with pytest.raises(PlayerError, match="SegmentDone in phase idle"):
        c.handle(SegmentDone(2.0, 1))
    out = c.handle(TimerFired(3.0))
    assert out == [Request("video", 1, 0, 2.0, False)]


def test_a_slow_download_is_abandoned_and_refetched_lower(tiny_video: Video) -> None:
    c = core(first_level=2)
    c.handle(ManifestLoaded(0.0, tiny_video))
    assert c.handle(ResponseStarted(0.1, 0.1)) == [OfferProgress(0.35)]
    assert c.handle(BytesReceived(0.2, 1000)) == [OfferProgress(0.35)]  # early: asked again
    assert c.handle(BytesReceived(0.35, 2000)) == [OfferProgress(0.6)]  # under 0.5 s: go on
    out = c.handle(BytesReceived(0.6, 3000))  # 5 KB/s against an empty buffer: a clear stall
    assert out == [Abandon(0, 2, 0, 3000), Request("video", 0, 0, 0.0, True)]
    assert c.abandoned == 1
    c.handle(ResponseStarted(0.7, 0.1))
    c.handle(SegmentDone(2.0, 500_000))
    assert c.records[0].level == 0 and c.records[0].download_s == 2.0  # from the first request


def test_a_failed_request_starts_its_checks_afresh(tiny_video: Video) -> None:
    c = core(first_level=1)
    c.handle(ManifestLoaded(0.0, tiny_video))
    c.handle(ResponseStarted(0.1, 0.1))
    assert c.handle(RequestFailed(0.5)) == []
    assert c.phase == Phase.REQUESTED
    with pytest.raises(PlayerError, match="BytesReceived in phase requested"):
        c.handle(BytesReceived(0.6, 10))
    assert c.handle(ResponseStarted(0.6, 0.1)) == [OfferProgress(0.85)]


def test_audio_covering_each_segment_is_requested_before_the_segment_counts(tiny_video: Video) -> None:
    c = core()
    c.handle(ManifestLoaded(0.0, tiny_video, audio_durations_s=(2.0,) * 10))
    c.handle(ResponseStarted(0.1, 0.1))
    assert c.handle(SegmentDone(1.0, 500_000)) == [Request("audio", 0, 0, 0.0, True)]
    c.handle(ResponseStarted(1.1, 0.1))  # ignored for audio
    assert c.handle(SegmentDone(1.2, 30_000)) == [Request("audio", 1, 0, 0.0, True)]
    out = c.handle(SegmentDone(1.5, 30_000))
    assert out[0] == PlaybackStarted(1.5) and isinstance(out[-1], Request) and out[-1].kind == "video"
    assert c.records[0].time_s == 1.5 and c.records[0].download_s == 1.5


def test_the_session_finishes_after_max_segments_with_stalls_counted(tiny_video: Video) -> None:
    c = core(max_segments=2)
    c.handle(ManifestLoaded(0.0, tiny_video))
    c.handle(ResponseStarted(0.0, 0.0))
    c.handle(SegmentDone(1.0, 500_000))  # playing from 1.0 with 4 s
    c.handle(ResponseStarted(1.0, 0.0))
    out = c.handle(SegmentDone(7.0, 500_000))  # dry at 5.0: 2 s stalled; the last segment ends it
    assert out[:2] == [StallStarted(5.0), StallEnded(7.0, 2.0)]
    assert isinstance(out[-1], Finished) and c.phase == Phase.FINISHED
    result = out[-1].result
    assert len(result.records) == 2 and result.rebuffer_s == 2.0 and result.startup_s == 1.0
    assert result.score == pytest.approx(2 * 1.0 - 4.3 * 2.0 - 4.3 * 1.0)
    with pytest.raises(PlayerError, match="in phase finished"):
        c.handle(TimerFired(8.0))
