"""The pure link model: Mahimahi's opportunities, drop-tail queue, delay and loss."""

from __future__ import annotations

import pytest

from player_sim.errors import PlayerError
from player_sim.linkmodel import (
    Direction,
    LinkConfig,
    Opportunities,
    opportunities_from_trace,
    parse_opportunities,
)
from player_sim.traces import Trace


def _trace(*periods: tuple[float, float]) -> Trace:
    return Trace("t", 0.0, tuple(d for d, _ in periods), tuple(b for _, b in periods), tuple(0.0 for _ in periods))


def test_constant_trace_gives_one_opportunity_per_1500_bytes() -> None:
    # 12 Mbit/s = 1500 bytes per ms for 1 s, then 1 s of nothing.
    o = opportunities_from_trace(_trace((1.0, 12e6), (1.0, 0.0)))
    assert o.stamps_ms == tuple(range(1, 1001))
    assert o.period_ms == 2000
    assert o.mean_bps == 6e6


def test_slow_trace_carries_fractions_across_periods() -> None:
    # 6 Mbit/s = one packet every 2 ms; the half packet at the end of period 1 carries over.
    o = opportunities_from_trace(_trace((0.003, 6e6), (0.003, 6e6)))
    assert o.stamps_ms == (2, 4, 6)


def test_mahimahi_is_taken_as_it_is_and_cooked_and_sabre_are_converted() -> None:
    assert parse_opportunities("m", "1\n1\n5\n") == Opportunities("m", (1, 1, 5), 5)
    cooked = parse_opportunities("c", "0 12\n1 12\n")  # 12 Mbit/s between t=0 and t=1
    assert len(cooked.stamps_ms) == 1000
    sabre = parse_opportunities("s", '[{"duration_ms": 1000, "bandwidth_kbps": 12000, "latency_ms": 20}]')
    assert sabre.stamps_ms == tuple(range(1, 1001))
    with pytest.raises(PlayerError, match="rise"):
        parse_opportunities("m", "5\n1\n")
    with pytest.raises(PlayerError, match="line 2"):
        parse_opportunities("m", "5\nx\n")


def test_bad_config_is_one_clear_error() -> None:
    with pytest.raises(PlayerError, match="loss"):
        LinkConfig(loss=1.5)
    with pytest.raises(PlayerError, match="queue bytes"):
        LinkConfig(queue_bytes=0)


def test_burst_queues_one_packet_per_opportunity_then_adds_delay() -> None:
    d = Direction(Opportunities("m", (1, 2, 3, 4), 4), LinkConfig(delay_ms=10))
    for _ in range(3):
        assert d.arrive(bytes(1500), 0.0)
    assert d.advance(11.0) == [bytes(1500)]  # left at 1 ms, arrives at 11 ms
    assert d.next_event_ms() == 12.0
    assert len(d.advance(13.0)) == 2
    assert [p.queue_delay_ms for p in d.log] == [1.0, 2.0, 3.0]


def test_small_packets_share_an_opportunity_and_big_ones_take_two() -> None:
    d = Direction(Opportunities("m", (1, 2, 3), 3), LinkConfig())
    d.arrive(bytes(700), 0.0)
    d.arrive(bytes(700), 0.0)
    d.arrive(bytes(1500), 0.0)  # 100 bytes at 1 ms, 1400 at 2 ms
    assert len(d.advance(1.0)) == 2
    assert len(d.advance(2.0)) == 1


def test_idle_opportunities_are_lost_and_the_trace_loops() -> None:
    d = Direction(Opportunities("m", (1, 2), 10), LinkConfig())
    d.arrive(bytes(100), 5.0)  # opportunities at 1, 2 passed unused; next are 11, 12
    assert d.advance(10.9) == []
    assert len(d.advance(11.0)) == 1
    assert d.log[0].queue_delay_ms == 6.0


def test_drop_tail_bounds_bytes_and_packets() -> None:
    by_bytes = Direction(Opportunities("m", (1,), 1), LinkConfig(queue_bytes=3000))
    assert [by_bytes.arrive(bytes(1500), 0.0) for _ in range(3)] == [True, True, False]
    by_packets = Direction(Opportunities("m", (1,), 1), LinkConfig(queue_packets=1))
    assert [by_packets.arrive(bytes(100), 0.0) for _ in range(2)] == [True, False]
    assert by_packets.log[-1].dropped == "queue"


def test_random_loss_rate_follows_the_configuration() -> None:
    d = Direction(Opportunities("m", (1,), 1), LinkConfig(loss=0.1), seed=7)
    kept = sum(d.arrive(bytes(10), float(i)) for i in range(20000))
    assert 0.88 < kept / 20000 < 0.92
    assert {p.dropped for p in d.log} == {"loss", None}


def test_codel_drops_a_standing_queue_that_drop_tail_keeps() -> None:
    from player_sim.linkmodel import Queue

    def run(queue: Queue) -> list[str | None]:
        d = Direction(Opportunities("m", (1,), 1), LinkConfig(queue=queue))
        for i in range(2000):  # two packets a ms into one packet a ms: a queue that keeps growing
            d.arrive(bytes(1500), i / 2)
            d.advance(i / 2)
        d.advance(5000.0)
        return [p.dropped for p in d.log]

    assert run(Queue.DROPTAIL).count("codel") == 0
    fates = run(Queue.CODEL)
    drops = fates.count("codel")
    # Nothing in the first interval (100 ms above target first), then drops at a rising rate.
    assert fates[:100].count("codel") == 0
    assert 10 < drops < 1000
