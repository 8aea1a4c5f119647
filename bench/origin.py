"""Benchmark: the origin against nginx serving the same folder, over HTTP/1.1 with wrk.

    .venv/bin/python bench/origin.py [--duration-s 10] [--connections 32] [--json OUT.json]

Builds a title folder in a temporary directory (20 segments of 1 MiB and a ~1 KB media
playlist), then, for 1 and for 2 worker processes, runs the origin (SO_REUSEPORT workers)
and Debian's nginx (``worker_processes``, sendfile on, access log off) side by side and
loads them with ``wrk`` over HTTP/1.1: the segments (rotating through all 20) and the
playlist, ``--duration-s`` seconds per server and workload, alternating between the two
servers in ``--rounds`` short rounds so that load from other jobs on a shared machine hits
both alike (medians kept). Prints requests/s, MB/s (body bytes, 10^6), the servers' CPU
time per request and the ratio origin/nginx at equal workers. nginx and wrk are installed
with apt-get when missing; both servers are foreground child processes on 127.0.0.1,
stopped at the end. On a 2-core machine wrk competes with the servers for the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEGMENT_BYTES = 1 << 20  # 1 MiB
SEGMENTS = 20
TITLE = "bench"


@dataclass(frozen=True)
class Result:
    """One wrk run."""

    server: str
    """"origin" or "nginx"."""
    workers: int
    """Worker processes of the server."""
    workload: str
    """"segment-1MiB" or "manifest"."""
    requests_per_s: float
    """Completed requests per second (wrk)."""
    body_mb_per_s: float
    """Response body megabytes (10^6 bytes) per second."""
    errors: int
    """Socket errors plus non-2xx answers reported by wrk."""
    server_cpu_ms_per_request: float
    """CPU time (user + system) of the server's processes per request: less sensitive to
    the load tool and to other jobs on a shared machine than req/s."""


def ensure_debian_packages(*commands: str) -> None:
    """Installs the Debian packages of the same names when the commands are missing."""
    missing = [
        c for c in commands if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()
    ]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"bench: installing {' '.join(missing)} with apt-get", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def make_title(media: Path) -> tuple[list[str], str, int]:
    """Writes the benchmark title; returns (segment paths, playlist path, playlist size)."""
    title = media / TITLE
    (title / "720p").mkdir(parents=True)
    segments = []
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    for number in range(1, SEGMENTS + 1):
        name = f"seg-{number:05d}.m4s"
        (title / "720p" / name).write_bytes(os.urandom(SEGMENT_BYTES))
        segments.append(f"/media/{TITLE}/720p/{name}")
        lines += ["#EXTINF:4.000,", name]
    lines.append("#EXT-X-ENDLIST")
    playlist = "\n".join(lines) + "\n"
    (title / "720p" / "index.m3u8").write_text(playlist)
    (title / "720p" / "init.mp4").write_bytes(os.urandom(800))
    (title / "title.json").write_text(json.dumps({"format": 1, "title": TITLE, "renditions": []}))
    for path in [media, *media.rglob("*")]:  # nginx workers may run as an unprivileged user
        path.chmod(0o755 if path.is_dir() else 0o644)
    return segments, f"/media/{TITLE}/720p/index.m3u8", len(playlist.encode())


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, cpu s)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15 (proc(5))
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _cpu) in stats.items() if parent == current]
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {timeout_s} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # nginx: fast shutdown; origin: graceful exit
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def origin_server(media: Path, workers: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "abrstack",
            "origin",
            "--media",
            str(media),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/healthz", proc)
        time.sleep(0.5 * workers)  # the other workers bind after the first answers
        yield base, proc.pid
    finally:
        stop(proc)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/client;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        application/dash+xml mpd;
        video/mp4 mp4 m4s;
        application/json json;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location /media/ {{
            alias {media}/;
            add_header Cache-Control "public, max-age=31536000, immutable";
            add_header Access-Control-Allow-Origin "*";
        }}
        location = /healthz {{ return 200 "ok\\n"; }}
    }}
}}
"""


@contextmanager
def nginx_server(media: Path, workers: int, tmp: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    conf_dir = tmp / f"nginx-{workers}"
    conf_dir.mkdir()
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, tmp=conf_dir, port=port, media=media))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(conf_dir), "-e", str(conf_dir / "error.log")],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/healthz", proc)
        yield base, proc.pid
    finally:
        stop(proc)


WRK_LUA = """\
local paths = {{{paths}}}
local i = 0
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
"""


def run_wrk(
    base: str, paths: list[str], duration_s: float, connections: int, threads: int, tmp: Path
) -> tuple[float, int, int]:
    """Runs wrk cycling through ``paths``; returns (requests/s, requests, errors)."""
    script = tmp / "paths.lua"
    script.write_text(WRK_LUA.format(paths=", ".join(json.dumps(p) for p in paths)))
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s:g}s",
            "-s",
            str(script),
            base + "/",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if match is None:
        raise RuntimeError(f"cannot read wrk's output:\n{done.stdout}\n{done.stderr}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", done.stdout))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    count = re.search(r"(\d+) requests in", done.stdout)
    return (
        float(match.group(1)),
        int(count.group(1)) if count else 0,
        errors + (int(non2xx.group(1)) if non2xx else 0),
    )


def report(results: list[Result]) -> str:
    lines = [
        f"{'server':<8} {'workers':>7} {'workload':<13} {'req/s':>10} {'MB/s':>9} "
        f"{'errors':>6} {'server CPU ms/req':>18}"
    ]
    for r in results:
        lines.append(
            f"{r.server:<8} {r.workers:>7} {r.workload:<13} {r.requests_per_s:>10.0f} "
            f"{r.body_mb_per_s:>9.1f} {r.errors:>6} {r.server_cpu_ms_per_request:>18.3f}"
        )
    lines.append("")
    lines.append("ratio origin/nginx (req/s) at equal workers:")
    by_key = {(r.server, r.workers, r.workload): r for r in results}
    for (server, workers, workload), r in by_key.items():
        other = by_key.get(("nginx", workers, workload))
        if server == "origin" and other is not None and other.requests_per_s > 0:
            cpu = (
                other.server_cpu_ms_per_request / r.server_cpu_ms_per_request
                if r.server_cpu_ms_per_request > 0
                else float("nan")
            )
            lines.append(
                f"  {workload:<13} {workers} worker(s): {r.requests_per_s / other.requests_per_s:.2f}x"
                f"   (CPU efficiency, nginx CPU/origin CPU per request: {cpu:.2f}x)"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration-s",
        type=float,
        default=10.0,
        help="seconds of load per server and workload (split over the rounds)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (median kept)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    ensure_debian_packages("nginx", "wrk")
    per_round_s = max(1, round(args.duration_s / args.rounds))  # wrk takes whole seconds
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="abr-bench-origin-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        media = tmp / "media"
        segments, playlist, playlist_bytes = make_title(media)
        workloads = [
            ("segment-1MiB", segments, SEGMENT_BYTES),
            ("manifest", [playlist], playlist_bytes),
        ]
        for workers in args.workers:
            # Both servers run side by side and the measurements alternate between them in
            # short rounds, so that load from other jobs hits both alike; medians are kept.
            with (
                origin_server(media, workers) as origin,
                nginx_server(media, workers, tmp) as nginx,
            ):
                runs: dict[tuple[str, str], list[tuple[float, int, float]]] = {}
                for _round in range(args.rounds):
                    for workload, paths, _body in workloads:
                        for server, (base, pid) in (("origin", origin), ("nginx", nginx)):
                            cpu_before = tree_cpu_s(pid)
                            rps, count, errors = run_wrk(
                                base,
                                paths,
                                per_round_s,
                                args.connections,
                                args.threads,
                                tmp,
                            )
                            cpu_ms = 1000 * (tree_cpu_s(pid) - cpu_before) / max(count, 1)
                            runs.setdefault((server, workload), []).append((rps, errors, cpu_ms))
                            print(
                                f"  {server} x{workers} {workload}: {rps:.0f} req/s",
                                file=sys.stderr,
                            )
                for server in ("origin", "nginx"):
                    for workload, _paths, body_bytes in workloads:
                        samples = runs[(server, workload)]
                        rps = statistics.median(r for r, _e, _c in samples)
                        results.append(
                            Result(
                                server,
                                workers,
                                workload,
                                rps,
                                rps * body_bytes / 1e6,
                                sum(e for _r, e, _c in samples),
                                statistics.median(c for _r, _e, c in samples),
                            )
                        )
    print(report(results))
    load = os.getloadavg()
    print(
        f"(wrk -t{args.threads} -c{args.connections}, {per_round_s * args.rounds} s per server and "
        f"workload in {args.rounds} alternating rounds, median; "
        f"{os.cpu_count()} CPUs; load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})"
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
