"""`abr fleet up|status|down` as a user runs them: real processes, a private redis-server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from abrstack.procs import pid_alive
from tests.conftest import TinyTitle

ABR = [sys.executable, "-m", "abrstack"]


def _abr(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ABR, *args], capture_output=True, text=True, timeout=timeout)


def test_up_status_down(tmp_path: Path, tiny_title: TinyTitle) -> None:
    state = tmp_path / "fleet"
    r = _abr("fleet", "up", "--media", str(tiny_title.media_dir), "--edges", "2", "--shield",
             "--state", str(state))
    try:
        assert r.returncode == 0, r.stderr
        doc = json.loads((state / "fleet.json").read_text())
        for key in ("redis", "origin", "shield", "edges", "steering"):
            assert key in doc
        assert len(doc["edges"]) == 2 and doc["shield"]["kind"] == "shield"
        for e in doc["edges"]:
            assert e["url"] in r.stdout and e["h2"] in r.stdout and e["spki"] in r.stdout
        twice = _abr("fleet", "up", "--media", str(tiny_title.media_dir), "--state", str(state))
        assert twice.returncode == 1 and "already runs" in twice.stderr
        import httpx

        first = httpx.get(doc["edges"][0]["url"] + "/media/tiny/master.m3u8")
        again = httpx.get(doc["edges"][0]["url"] + "/media/tiny/master.m3u8")
        assert first.headers["x-cache"] == "MISS" and again.headers["x-cache"] == "HIT"
        # the steering service knows the fleet's edges: redirect routing lands on one of them
        to = httpx.get(doc["steering"]["url"] + "/media/tiny/master.m3u8")
        assert to.status_code == 302
        assert to.headers["location"].split("/media/")[0] in [e["url"] for e in doc["edges"]]
        st = _abr("fleet", "status", "--state", str(state), "--json")
        assert st.returncode == 0, st.stdout + st.stderr
        rows = {row["name"]: row for row in json.loads(st.stdout)}
        assert all(rows[n]["up"] for n in ("redis", "origin", "shield", "edge-1", "edge-2",
                                           "steer"))
        e1 = rows["edge-1"]
        assert e1["requests"] == 2 and e1["hit_ratio"] == 0.5 and e1["titles"] in (0, 1)
        assert e1["offload"] == 0.5  # the same body once fetched, once from the cache
        assert rows["fleet"]["hit_ratio"] == 0.5
        assert rows["steer"]["requests"] >= 1  # the redirect above was a steering decision
    finally:
        d = _abr("fleet", "down", "--state", str(state))
    assert d.returncode == 0 and "edge-1" in d.stdout and "redis" in d.stdout
    assert "steer" in d.stdout
    assert not any(pid_alive(s["pid"]) for s in [doc["redis"], doc["origin"], doc["steering"],
                                                 *doc["edges"]])
    gone = _abr("fleet", "status", "--state", str(state))
    assert gone.returncode == 1 and "no fleet in" in gone.stderr


def test_bad_input_is_one_sentence(tmp_path: Path, tiny_title: TinyTitle) -> None:
    bad = tmp_path / "f.yaml"
    bad.write_text("edges:\n  count: 0\n")
    for args, words in [
        (("--spec", str(bad)), "edges.count must be a whole number from 1 to 64"),
        (("--edges", "0"), "--edges must be from 1 to 64"),
        (("--media", str(tmp_path / "nothing")), "does not exist"),
        (("--redis", "http://x"), "is not a redis/rediss/unix URL"),
    ]:
        r = _abr("fleet", "up", *args, "--state", str(tmp_path / "s"), timeout=30)
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
