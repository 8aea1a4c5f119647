"""The emulated link for real: two namespaces the test creates, TUN devices, the forwarder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from player_sim.errors import PlayerError
from player_sim.linkmodel import LinkConfig
from player_sim.netem import EmulatedLink, clean_stale, root_missing

pytestmark = pytest.mark.skipif(root_missing() is not None, reason=root_missing() or "")

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9000)); s.listen(); print("up", flush=True)
c, _ = s.accept(); c.sendall(bytes(int(sys.argv[2]))); c.close()
"""
CLIENT = """
import socket, sys, time
t = time.monotonic(); s = socket.create_connection((sys.argv[1], 9000), timeout=20); n = 0
while (b := s.recv(65536)):
    n += len(b)
print(n, time.monotonic() - t)
"""
UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 9001)); print("up", flush=True)
while True:
    data, peer = s.recvfrom(2048); s.sendto(data, peer)
"""
UDP_PING = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5); sent = {}; rtts = []
for i in range(int(sys.argv[2])):
    sent[i] = time.monotonic(); s.sendto(i.to_bytes(4, "big") + bytes(996), (sys.argv[1], 9001)); time.sleep(0.001)
try:
    while len(rtts) < len(sent):
        data, _ = s.recvfrom(2048); rtts.append((time.monotonic() - sent[int.from_bytes(data[:4], "big")]) * 1000)
except TimeoutError:
    pass
print(len(rtts), min(rtts) if rtts else -1)
"""


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.split()}


def _trace(tmp_path: Path, per_ms: int = 1, ms: int = 1000) -> Path:
    """A Mahimahi trace: ``per_ms`` opportunities every millisecond (12 Mbit/s each)."""
    p = tmp_path / "link.mahi"
    p.write_text("".join(f"{t}\n" * per_ms for t in range(1, ms + 1)))
    return p


def _serve(link: EmulatedLink, script: str, *args: str) -> subprocess.Popen[bytes]:
    p = link.popen("server", [sys.executable, "-c", script, link.server_addr, *args], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"up"
    return p


def _client(link: EmulatedLink, script: str, *args: str) -> list[str]:
    r = subprocess.run(["ip", "netns", "exec", link.client_ns, sys.executable, "-c", script, link.server_addr, *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_tcp_runs_at_the_trace_rate_and_the_log_shows_queueing(tmp_path: Path) -> None:
    log = tmp_path / "packets.csv"
    with EmulatedLink(_trace(tmp_path), LinkConfig(delay_ms=10), log=log) as link:
        assert link.server_ns in _namespaces() and link.client_ns in _namespaces()
        _serve(link, SERVER, str(3_000_000))
        n, elapsed = _client(link, CLIENT)
    assert int(n) == 3_000_000
    # 12 Mbit/s carries 3 MB of payload (plus headers) in no less than 2.0 s.
    assert 2.0 <= float(elapsed) < 4.0
    rows = [line.split(",") for line in log.read_text().splitlines()[1:]]
    down = [r for r in rows if r[1] == "down" and r[3]]
    assert sum(int(r[2]) for r in down) > 3_000_000
    assert max(float(r[3]) for r in down) > 5.0  # TCP filled the queue at some point
    assert not {link.server_ns, link.client_ns} & _namespaces()


def test_udp_sees_the_delay_in_both_directions_and_the_loss(tmp_path: Path) -> None:
    with EmulatedLink(_trace(tmp_path, per_ms=4), LinkConfig(delay_ms=25, loss=0.2), seed=3) as link:
        _serve(link, UDP_ECHO)
        got, min_rtt = _client(link, UDP_PING, "200")
    assert float(min_rtt) >= 50.0  # 25 ms each way
    # Each ping crosses twice: kept with probability 0.8 ** 2 = 0.64.
    assert 0.5 < int(got) / 200 < 0.78


def test_drop_tail_queue_in_bytes_drops_and_is_logged(tmp_path: Path) -> None:
    log = tmp_path / "packets.csv"
    with EmulatedLink(_trace(tmp_path), LinkConfig(delay_ms=20, queue_bytes=15_000), log=log) as link:
        _serve(link, SERVER, str(2_000_000))
        n, _ = _client(link, CLIENT)
    assert int(n) == 2_000_000
    rows = [line.split(",") for line in log.read_text().splitlines()[1:]]
    assert any(r[4] == "queue" for r in rows)
    # Never more than 10 packets of 1500 bytes wait: at one per ms, at most ~10 ms of queueing.
    assert max(float(r[3]) for r in rows if r[3]) <= 11.0


def test_the_link_is_the_only_way_out(tmp_path: Path) -> None:
    with EmulatedLink(_trace(tmp_path), LinkConfig()) as link:
        r = subprocess.run(["ip", "netns", "exec", link.client_ns, sys.executable, "-c",
                            "import socket; socket.create_connection(('127.0.0.1', 22), timeout=2)"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        routes = subprocess.run(["ip", "-n", link.client_ns, "route"], capture_output=True, text=True).stdout
        assert "default" not in routes


def test_a_bad_trace_is_one_sentence_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mahi"
    bad.write_text("5\n1\n")
    before = _namespaces()
    with pytest.raises(PlayerError, match="must rise"), EmulatedLink(bad, LinkConfig()):
        pass
    assert _namespaces() == before


def test_a_killed_run_leaves_nothing_behind(tmp_path: Path) -> None:
    trace = _trace(tmp_path)
    script = (f"import time; from pathlib import Path; from player_sim.netem import EmulatedLink; "
              f"from player_sim.linkmodel import LinkConfig\n"
              f"with EmulatedLink(Path({str(trace)!r}), LinkConfig()) as l:\n"
              f"    print(l.server_ns, l.client_ns, flush=True); time.sleep(60)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    for how in (signal.SIGINT, signal.SIGKILL):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert p.stdout is not None
        names = set(p.stdout.readline().decode().split())
        assert names <= _namespaces() and len(names) == 2
        p.send_signal(how)
        p.wait(10)
        # SIGINT: the run cleans up; SIGKILL: its forwarder sees stdin close and cleans up.
        deadline = time.monotonic() + 5
        while names & _namespaces() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not names & _namespaces(), how


def test_stale_namespaces_of_dead_runs_are_removed() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f"abr-{dead.pid}-stale"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name in clean_stale()
        assert name not in _namespaces()
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_codel_drops_at_the_head_of_a_real_tcp_queue_and_drop_tail_does_not(tmp_path: Path) -> None:
    from player_sim.linkmodel import Queue

    for queue in (Queue.DROPTAIL, Queue.CODEL):
        log = tmp_path / f"{queue.value}.csv"
        with EmulatedLink(_trace(tmp_path), LinkConfig(delay_ms=20, queue=queue), log=log) as link:
            _serve(link, SERVER, str(3_000_000))
            n, _ = _client(link, CLIENT)
        assert int(n) == 3_000_000
        rows = [line.split(",") for line in log.read_text().splitlines()[1:] if ",down," in line]
        assert any(r[4] == "codel" for r in rows) == (queue is Queue.CODEL)
