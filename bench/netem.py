"""Benchmark: the emulated link's forwarder (throughput, CPU per packet) and its fidelity.

Usage (root; heavy, so under the shared lock):
    flock /tmp/abrstack-heavy.lock .venv/bin/python bench/netem.py [--seconds S]

1. Throughput: a UDP sender in the players' namespace sends 1500-byte IP packets (1472-byte
   payloads), paced at 16,000 packets/s (192 Mbit/s offered), into a link of 50 opportunities
   per ms (600 Mbit/s) with a 1,000-packet queue, so that the forwarder is what limits; the
   receiver in the edge's namespace counts what arrives. Reported: delivered Mbit/s, packets/s,
   and the forwarder's CPU microseconds per forwarded packet (from /proc). Then one TCP bulk
   stream (edge → players) over a 120 Mbit/s link. Goal (issue 17): >= 50 Mbit/s of 1500-byte packets.
2. Fidelity: a 12 Mbit/s link with a 60-packet drop-tail queue filled by UDP at ~2x the rate:
   the largest logged queueing delay vs the configured bound (60 packets at 1 per ms = 60 ms);
   and 5% configured random loss vs the loss measured on 5,000 paced packets.
Baseline: the trace's own capacity, in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from player_sim.linkmodel import LinkConfig  # noqa: E402
from player_sim.netem import EmulatedLink, root_missing  # noqa: E402

RECV = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((sys.argv[1], 9001)); s.settimeout(1.0); print("up", flush=True); n = b = 0; t0 = t1 = None
try:
    while True:
        data = s.recv(2048); t1 = time.monotonic(); t0 = t0 or t1; n += 1; b += len(data) + 28
except TimeoutError:
    pass
print(n, b, (t1 or 0) - (t0 or 0), flush=True)
"""
SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); payload = bytes(int(sys.argv[4]))
end = time.monotonic() + float(sys.argv[2]); gap = float(sys.argv[3]); sent = 0; nxt = time.monotonic()
while time.monotonic() < end:
    try:
        s.sendto(payload, (sys.argv[1], 9001)); sent += 1
    except OSError:
        time.sleep(0.0005)
    if gap:
        nxt += gap
        while time.monotonic() < nxt:
            pass
print(sent)
"""
TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9000)); s.listen(); print("up", flush=True)
c, _ = s.accept(); c.sendall(bytes(int(sys.argv[2]))); c.close()
"""
TCP_CLIENT = """
import socket, sys, time
t = time.monotonic(); s = socket.create_connection((sys.argv[1], 9000)); n = 0
while (b := s.recv(1 << 20)):
    n += len(b)
print(n, time.monotonic() - t)
"""


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _trace(folder: Path, per_ms: int, ms: int = 1000) -> Path:
    p = folder / f"x{per_ms}.mahi"
    p.write_text("".join(f"{t}\n" * per_ms for t in range(1, ms + 1)))
    return p


def _udp(link: EmulatedLink, seconds: float, gap_s: float, payload: int = 1472) -> tuple[int, int, int, float]:
    recv = link.popen("server", [sys.executable, "-c", RECV, link.server_addr], stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None and recv.stdout.readline().strip() == "up"
    out = subprocess.run(["ip", "netns", "exec", link.client_ns, sys.executable, "-c", SEND, link.server_addr,
                          str(seconds), str(gap_s), str(payload)], capture_output=True, text=True, check=True)
    n, b, span = recv.stdout.readline().split()
    recv.wait()
    return int(out.stdout), int(n), int(b), float(span)


def throughput(folder: Path, seconds: float) -> None:
    with EmulatedLink(_trace(folder, 50), LinkConfig(queue_packets=1000)) as link:
        pid = link.forwarder_pid
        assert pid is not None
        cpu0 = _cpu_s(pid)
        sent, n, b, span = _udp(link, seconds, 1 / 16000)
        cpu = _cpu_s(pid) - cpu0
        print(f"udp 1500-byte packets: sent {sent}, delivered {n} in {span:.2f} s = {b * 8 / span / 1e6:.1f} Mbit/s "
              f"({n / span:,.0f} pkt/s) of 192 Mbit/s offered; link capacity 600 Mbit/s; forwarder CPU {cpu / max(sent, 1) * 1e6:.1f} "
              f"us per offered packet ({cpu:.2f} CPU-s); goal >= 50 Mbit/s: {'met' if b * 8 / span >= 50e6 else 'MISSED'}")
    with EmulatedLink(_trace(folder, 10), LinkConfig(queue_packets=1000)) as link:
        srv = link.popen("server", [sys.executable, "-c", TCP_SERVER, link.server_addr, str(60_000_000)],
                         stdout=subprocess.PIPE, text=True)
        assert srv.stdout is not None and srv.stdout.readline().strip() == "up"
        out = subprocess.run(["ip", "netns", "exec", link.client_ns, sys.executable, "-c", TCP_CLIENT,
                              link.server_addr], capture_output=True, text=True, check=True)
        nbytes, elapsed = out.stdout.split()
        print(f"tcp bulk 60 MB: {int(nbytes) * 8 / float(elapsed) / 1e6:.1f} Mbit/s goodput over the 120 Mbit/s link")


def fidelity(folder: Path) -> None:
    trace = _trace(folder, 1)
    log = folder / "q.csv"
    with EmulatedLink(trace, LinkConfig(queue_packets=60), log=log) as link:
        _udp(link, 3.0, 0.0005)
    rows = [r.split(",") for r in log.read_text().splitlines()[1:]]
    up = [r for r in rows if r[1] == "up"]
    delays = [float(r[3]) for r in up if r[3]]
    drops = sum(r[4] == "queue" for r in up)
    print(f"queue 60 packets at 1 packet/ms: max queueing delay {max(delays):.1f} ms (configured bound 60 ms), "
          f"{drops} drop-tail drops of {len(up)} packets")
    log2 = folder / "l.csv"
    with EmulatedLink(trace, LinkConfig(loss=0.05), log=log2, seed=11) as link:
        sent, n, _, _ = _udp(link, 5.0, 0.001, payload=100)
    print(f"loss configured 5.0%: measured {100 * (1 - n / sent):.2f}% of {sent} packets end to end")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of the UDP throughput run")
    a = p.parse_args()
    why = root_missing()
    if why:
        print(why.split(";")[0] + ": this benchmark cannot run here.")
        return 1
    with tempfile.TemporaryDirectory(prefix="abr-netem-bench-") as d:
        throughput(Path(d), a.seconds)
        fidelity(Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
