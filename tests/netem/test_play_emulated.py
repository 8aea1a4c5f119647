"""`abr play URL --emulate TRACE`: real players in a namespace, a real edge and origin, the link."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abrstack.stack import Stack, running_stack
from player_sim.netem import root_missing

ABR = [sys.executable, "-m", "abrstack", "play"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ABR, *args], capture_output=True, text=True, timeout=120)


def test_link_options_without_emulate_and_emulate_with_trace_are_one_sentence(tmp_path: Path) -> None:
    trace = tmp_path / "t.mahi"
    trace.write_text("1\n")
    r = _run("http://127.0.0.1:9/x.m3u8", "--delay-ms", "20")
    assert r.returncode == 1 and "need --emulate" in r.stderr and "Traceback" not in r.stderr
    r = _run("http://127.0.0.1:9/x.m3u8", "--emulate", str(trace), "--trace", str(trace))
    assert r.returncode == 1 and "exclusive" in r.stderr and "Traceback" not in r.stderr
    r = _run("http://127.0.0.1:9/x.m3u8", "--emulate", str(trace), "--loss", "2")
    assert r.returncode == 1 and "loss must be" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def stack(tiny_title: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if root_missing():
        pytest.skip(root_missing() or "")
    with running_stack(tiny_title.media_dir, tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.mark.parametrize("protocol", ["h1", "h2", "h3"])
def test_a_session_crosses_the_emulated_link(stack: Stack, tiny_title: Any, tmp_path: Path, protocol: str) -> None:
    trace = tmp_path / "8mbit.mahi"  # 2 opportunities every 3 ms: 8 Mbit/s
    trace.write_text("".join(f"{t}\n{t}\n" for t in range(3, 3001, 3)))
    base = stack.edge_http if protocol == "h1" else stack.edge_https
    log = tmp_path / "packets.csv"
    r = _run(f"{base}/media/{tiny_title.name}/master.m3u8", "--protocol", protocol, "--emulate", str(trace),
             "--delay-ms", "15", "--insecure", "--json", "--packet-log", str(log), "--speed", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "emulated link" in r.stderr
    agg = json.loads(r.stdout)
    assert agg[protocol]["sessions"] == 1
    assert agg[protocol]["protocols_seen"] == [{"h1": "1.1", "h2": "2", "h3": "3"}[protocol]]
    rows = [line.split(",") for line in log.read_text().splitlines()[1:]]
    down_bytes = sum(int(row[2]) for row in rows if row[1] == "down" and row[3])
    media_bytes = sum(p.stat().st_size for p in (tiny_title.media_dir / tiny_title.name).rglob("*.m4s"))
    # At least the lowest rendition's segments crossed the link, packet by packet.
    assert down_bytes > media_bytes / 4


def test_without_root_it_says_so_and_falls_back_to_shaping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from abrstack.cli import main

    trace = tmp_path / "t.mahi"
    trace.write_text("1\n2\n")
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # the outside world: an unprivileged user
    rc = main(["play", "http://127.0.0.1:9/x.m3u8", "--emulate", str(trace), "--max-retries", "0"])
    err = capsys.readouterr().err
    assert "link emulation needs root" in err and "falling back to in-client shaping" in err
    # The fallback ran the ordinary shaped player, which then meets the closed port.
    assert rc == 1 and "127.0.0.1:9" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.skipif(root_missing() is not None, reason=root_missing() or "")
def test_demo_over_the_emulated_link(tmp_path: Path) -> None:
    trace = tmp_path / "8mbit.mahi"
    trace.write_text("".join(f"{t}\n{t}\n" for t in range(3, 3001, 3)))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "abrstack", "demo", "--media", str(tmp_path / "media"), "--out",
                        str(out), "--duration", "8", "--size", "320x180", "--speed", "8", "--protocol", "h1,h3",
                        "--emulate", str(trace), "--delay-ms", "10"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines() if ln[:3] in ("h1 ", "h3 ")}
    assert set(rows) == {"h1", "h3"}
    for proto in ("h1", "h3"):
        assert (out / proto / "report.html").exists()
        assert len((out / f"{proto}-packets.csv").read_text().splitlines()) > 100
