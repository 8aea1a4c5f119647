"""The miss path's state machine (edge.fill): its table, and the paths it takes in a real
edge — one worker, two workers on one cache dir, a revalidation, a shield tier of edges in
front of edges (configuration only), and a forwarding loop."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from abrstack.cli import build_parser
from edge import EdgeError
from edge.cli import build_config
from edge.fill import _ADMIT, TRANSITIONS, Admit, Filler, Outcome, Step, admit
from edge.policy import Lookup
from tests.edge.conftest import Obj, gated_stampede

MB = bytes(range(256)) * 4096
SEG_CC = "public, max-age=31536000, immutable"


def test_every_step_has_a_handler_and_every_path_ends_done() -> None:
    steps = {s for s in Step if s is not Step.DONE}
    assert {s for s, _ in TRANSITIONS} == steps
    handled = set(Filler.__init__.__code__.co_names)  # the handler map names them all
    assert all(f"_{s.value}" in handled for s in steps), handled
    # From the two entry steps every step is reachable, and from every step DONE is.
    succ: dict[Step, set[Step]] = {}
    for (s, _), t in TRANSITIONS.items():
        succ.setdefault(s, set()).add(t)

    def reach(start: Step) -> set[Step]:
        seen, todo = {start}, deque([start])
        while todo:
            for t in succ.get(todo.popleft(), ()):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen

    assert reach(Step.DISK) | reach(Step.FETCH) == set(Step)
    assert all(Step.DONE in reach(s) for s in Step)
    assert set(Outcome) == {o for _, o in TRANSITIONS}  # no outcome without a transition


def test_admit_is_total_and_never_fills_twice() -> None:
    verdicts: list[Lookup | None] = [None, *Lookup]
    assert {(v, f) for v in verdicts for f in (False, True)} == set(_ADMIT)
    for v in verdicts:  # a key with a fill in flight never starts another one
        assert admit(v, True) in (Admit.SERVE, Admit.JOIN)
    assert admit(None, False) is Admit.FILL
    assert admit(Lookup.REVALIDATE, False) is Admit.REVALIDATE


def steps(base: str, worker: str = "0") -> dict[tuple[str, str], float]:
    """The edge's ``edge_fill_steps_total`` counters: (step, outcome) → count."""
    out = {}
    for fam in text_string_to_metric_families(httpx.get(base + "/metrics").text):
        for s in fam.samples:
            if s.name == "edge_fill_steps_total" and s.labels["worker"] == worker:
                out[s.labels["step"], s.labels["outcome"]] = s.value
    return out


def test_a_miss_takes_disk_lock_fetch_store(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/media/t/360p/seg-00001.m4s"] = Obj(MB, {"Cache-Control": SEG_CC})
    with edge_factory([url], prefetch_k=0) as edge:
        assert httpx.get(edge.http + "/media/t/360p/seg-00001.m4s").content == MB
        assert steps(edge.http) == {("disk", "absent"): 1, ("lock", "won"): 1,
                                    ("fetch", "body"): 1, ("store", "stored"): 1}


def test_the_worker_that_lost_the_lock_mirrors(origin: Any, edge_factory: Any,
                                               tmp_path: Any) -> None:
    state, url = origin
    path = "/media/t/720p/seg-00001.m4s"
    state.objects[path] = Obj(MB, {"Cache-Control": SEG_CC})
    shared = tmp_path / "shared"
    with edge_factory([url], prefetch_k=0, cache_dir=shared) as a, \
            edge_factory([url], prefetch_k=0, cache_dir=shared) as b:
        httpx.get(url + "/warm")
        state.make_gate()

        async def run() -> list[bytes]:
            async with aiohttp.ClientSession() as s:
                ra = await s.get(a.http + path)
                first = await ra.content.readexactly(1000)  # a holds the lock and streams
                rb = await s.get(b.http + path)
                state.open_gate()
                return [first + await ra.read(), await rb.read()]

        assert asyncio.run(run()) == [MB, MB] and state.count(path) == 1
        assert steps(b.http) == {("disk", "absent"): 1, ("lock", "held"): 1,
                                 ("mirror", "complete"): 1, ("store", "stored"): 1}


def test_a_stale_copy_is_revalidated_from_fetch(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/media/t/master.m3u8"] = Obj(b"#EXTM3U\n", {
        "Cache-Control": "public, max-age=0", "ETag": '"m1"'})
    with edge_factory([url]) as edge:
        httpx.get(edge.http + "/media/t/master.m3u8")
        r = httpx.get(edge.http + "/media/t/master.m3u8")
        assert r.headers["x-cache"] == "REVALIDATED" and r.text == "#EXTM3U\n"
        assert steps(edge.http)[("fetch", "answered")] == 1


def test_a_shield_tier_is_configuration_one_origin_fetch_for_a_stampede_over_both_tiers(
        origin: Any, edge_factory: Any, tmp_path: Any) -> None:
    state, url = origin
    path = "/media/new/1080p/seg-00001.m4s"
    state.objects[path] = Obj(MB, {"Cache-Control": SEG_CC})
    with edge_factory([url], prefetch_k=0, via_name="shield", cache_dir=tmp_path / "s") as shield, \
            edge_factory([shield.http], prefetch_k=0, via_name="edge-1",
                         cache_dir=tmp_path / "e1") as e1, \
            edge_factory([shield.http], prefetch_k=0, via_name="edge-2",
                         cache_dir=tmp_path / "e2") as e2:
        httpx.get(url + "/warm")
        state.make_gate()

        results = gated_stampede(state, path, [e1.http, e2.http, shield.http], 30)
        assert state.count(path) == 1
        assert all(st == 200 and body == MB for st, body, *_ in results)
        vias = {", ".join(v) for *_, v in results}
        assert vias == {"1.1 shield", "1.1 shield, 1.1 edge-1", "1.1 shield, 1.1 edge-2"}, vias


def test_a_forwarding_loop_is_508_not_a_storm(edge_factory: Any) -> None:
    with socket.socket() as probe:  # a free port, so that the edge can name itself upstream
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with edge_factory([f"http://127.0.0.1:{port}"], via_name="loopy", http_port=port,
                      retries=0) as edge:
        r = httpx.get(edge.http + "/media/t/master.m3u8", timeout=10)
        assert r.status_code == 508 and "loop detected" in r.text
        answered = {(s.labels["cache"], s.value) for fam in text_string_to_metric_families(
            httpx.get(edge.http + "/metrics").text) for s in fam.samples
            if s.name == "edge_requests_total" and s.labels["status"] == "508"}
        assert answered == {("NONE", 1.0), ("MISS", 1.0)}  # its own fetch once, then the client
        mine = httpx.get(edge.http + "/media/t/x.m4s", headers={"Via": "1.1 other, 2 loopy"})
        assert mine.status_code == 508


def test_each_edge_names_itself_in_via_by_default_and_a_bad_name_is_refused() -> None:
    def config(*argv: str) -> Any:
        return build_config(build_parser().parse_args(["edge", "--origin", "http://x", *argv]))

    a, b = config("--port", "9443").app, config("--port", "9444").app
    assert a.via_name != b.via_name and a.via_name.endswith("-9443")
    assert config("--via-name", "shield-1").app.via_name == "shield-1"
    with pytest.raises(EdgeError, match="token characters"):
        config("--via-name", "a b")
