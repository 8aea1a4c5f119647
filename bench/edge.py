"""Edge benchmark: cache-hit throughput over h1/h2/h3 and a 200-client stampede, with
nginx ``proxy_cache`` in front of the same origin as the baseline, in the same run.

    .venv/bin/python bench/edge.py [--duration 6] [--workers 2] [--json out.json]

Installs Debian's nginx, wrk, nghttp2-client (h2load), caddy and ngtcp2-client
(gtlsclient) with apt-get when missing. Load tools: wrk (h1), h2load (h2), the edge's
aioquic client (h3 at 65000-byte datagrams: nginx 1.22 has no h3, so h3 is compared with
our own h2). Prints one table and the goal ratios: h1 1 MB ≥ 0.7× nginx; h2 ≥ 0.5× nginx
h2; h3 ≥ 0.7× our h2; stampede → 1 origin fetch with median TTFB ≤ 0.1× nginx's.

HTTP/3 against real peers (``h3peer``): Debian's caddy (quic-go; ``tls internal``, a static
``file_server`` of the same files) is the h3 baseline, and ngtcp2's ``gtlsclient`` (C, its
default datagram size) the load client, one connection with 200 × 1 MB or 1,000 × 20 KB
requests in flight, against caddy and against a second edge at its default 1350-byte
datagrams: goal ≥ 0.5× caddy at both sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from abrstack.stack import background  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv/bin/python").exists() else sys.executable
SIZES = {"1m": 1 << 20, "100k": 100 * 1024}
PEER_LOADS = {"1m": 200, "20k": 1000}
"""h3peer: requests per gtlsclient run (all in flight on one connection), by object size."""
PEER_SIZES = {"1m": 1 << 20, "20k": 20 * 1024}


@dataclass
class LoadResult:
    server: str
    protocol: str
    size: str
    requests_per_s: float
    mib_per_s: float
    tool: str


@dataclass
class StampedeResult:
    server: str
    clients: int
    origin_fetches: int
    ttfb_median_ms: float
    ttfb_p90_ms: float
    complete_median_ms: float
    errors: int


# ------------------------------------------------------------------ setup

def ensure_tools() -> None:
    need = {"nginx": "nginx", "wrk": "wrk", "h2load": "nghttp2-client", "caddy": "caddy",
            "gtlsclient": "ngtcp2-client"}
    missing = [pkg for exe, pkg in need.items()
               if shutil.which(exe) is None and not Path(f"/usr/sbin/{exe}").exists()]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing {' '.join(missing)} with apt-get", flush=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", *missing], check=False,
                   stdout=subprocess.DEVNULL)
    if any(shutil.which(e) is None and not Path(f"/usr/sbin/{e}").exists() for e in need):
        subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", *missing], check=True,
                       stdout=subprocess.DEVNULL)


def free_port() -> int:
    for _ in range(100):
        with socket.socket() as t, socket.socket(type=socket.SOCK_DGRAM) as u:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no free port")


def wait_http(url: str, timeout_s: float = 20) -> None:
    import httpx

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            httpx.get(url, timeout=1, verify=False)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


NGINX_CONF = """
user root;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/tmp_body;
    proxy_temp_path {dir}/tmp_proxy;
    fastcgi_temp_path {dir}/tmp_fcgi;
    uwsgi_temp_path {dir}/tmp_uwsgi;
    scgi_temp_path {dir}/tmp_scgi;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=edge:16m max_size=2g inactive=1h
                     use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{h1_port} reuseport;
        listen 127.0.0.1:{h2_port} ssl http2 reuseport;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        http2_max_requests 1000000;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 30s;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""


CADDYFILE = """{{
    admin off
    skip_install_trust
    storage file_system {dir}/storage
    servers {{
        protocols h1 h2 h3
    }}
}}
https://localhost:{port} {{
    bind 127.0.0.1
    tls internal
    root * {root}
    file_server
}}
"""


# ------------------------------------------------------------------ load tools

def run_wrk(url: str, duration_s: int, connections: int) -> tuple[float, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", url],
                         capture_output=True, text=True, timeout=duration_s + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out)
    assert m, out
    scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[m.group(2)]
    return rps, float(m.group(1)) * scale


def run_h2load(url: str, duration_s: int, connections: int, streams: int) -> tuple[float, float]:
    out = subprocess.run(["h2load", "-t2", f"-c{connections}", f"-m{streams}", "-D",
                          str(duration_s), url],
                         capture_output=True, text=True, timeout=duration_s + 60).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s, ([\d.]+)([KMG]?B)/s", out)
    assert m, out
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    assert done and int(done.group(2)) > 0, out
    scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[m.group(3)]
    return float(m.group(1)), float(m.group(2)) * scale


async def h3_load(host: str, port: int, path: str, duration_s: float, connections: int,
                  streams: int, datagram: int = 1350) -> tuple[float, float]:
    from edge.h3client import H3Client

    done = 0
    nbytes = 0
    stop_at = time.monotonic() + duration_s

    async def worker(c: H3Client) -> None:
        nonlocal done, nbytes
        while time.monotonic() < stop_at:
            n = 0
            async for chunk in c.stream(path):
                n += len(chunk)
            done += 1
            nbytes += n

    clients = [H3Client(host, port, max_datagram_bytes=datagram) for _ in range(connections)]
    for c in clients:
        await c.__aenter__()
    t0 = time.monotonic()
    await asyncio.gather(*[worker(c) for c in clients for _ in range(streams)])
    elapsed = time.monotonic() - t0
    for c in clients:
        await c.__aexit__()
    return done / elapsed, nbytes / elapsed / 2**20


def h3_load_subprocess(host: str, port: int, path: str, duration_s: int, connections: int,
                       streams: int, datagram: int, procs: int = 2) -> tuple[float, float]:
    """Run the h3 load in ``procs`` client processes at once (as wrk and h2load use two
    threads): one Python process is CPU-bound on QUIC well before the server is."""
    argv = [PY, __file__, "--h3-load", f"{host}:{port}{path}", "--duration", str(duration_s),
            "--connections", str(max(1, connections // procs)), "--streams", str(streams),
            "--quic-datagram", str(datagram)]
    children = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    rps = mibps = 0.0
    for c in children:
        out, _ = c.communicate(timeout=duration_s + 60)
        data = json.loads(out.strip().splitlines()[-1])
        rps += float(data["rps"])
        mibps += float(data["mibps"])
    return rps, mibps


def run_gtlsclient(port: int, path: str, requests: int, size: int) -> tuple[float, float]:
    """``requests`` GETs of ``path`` at once on one connection (ngtcp2's gtlsclient, its
    default datagram size); checks a sample answers 200 first. Returns req/s, MiB/s."""
    base = ["gtlsclient", "--exit-on-all-streams-close", "--sni=localhost", "127.0.0.1",
            str(port), f"https://localhost:{port}{path}"]
    probe = subprocess.run([*base[:1], "--no-quic-dump", "-n", "2", *base[1:]],
                           capture_output=True, timeout=60)
    statuses = re.findall(rb":status: (\d+)", probe.stdout + probe.stderr)
    assert statuses and all(x == b"200" for x in statuses), (port, path, statuses)
    t0 = time.perf_counter()
    done = subprocess.run([*base[:1], "-q", "-n", str(requests), *base[1:]],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    elapsed = time.perf_counter() - t0
    assert done.returncode == 0, (port, path, done.returncode)
    return requests / elapsed, requests * size / elapsed / 2**20


def h3_peers(work: Path, media: Path, origin: str, workers: int) -> list[LoadResult]:
    """caddy and a 1350-byte-datagram edge, each loaded by gtlsclient (module docstring)."""
    caddy_dir = work / "caddy"
    caddy_dir.mkdir()
    pc, pe, ph = free_port(), free_port(), free_port()
    (caddy_dir / "Caddyfile").write_text(CADDYFILE.format(dir=caddy_dir, port=pc,
                                                          root=media.parent))
    env = {**os.environ, "HOME": str(caddy_dir), "XDG_DATA_HOME": str(caddy_dir / "data"),
           "XDG_CONFIG_HOME": str(caddy_dir / "config")}
    out: list[LoadResult] = []
    with background(["caddy", "run", "--config", str(caddy_dir / "Caddyfile"), "--adapter",
                     "caddyfile"], env=env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL), \
            background([PY, "-m", "abrstack", "edge", "--origin", origin, "--port", str(pe),
                        "--http-port", str(ph), "--cache-dir", str(work / "edge-1350"),
                        "--workers", str(workers), "--access-log", "off"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        import httpx

        wait_http(f"http://127.0.0.1:{ph}/healthz")
        wait_http(f"https://localhost:{pc}/media/bench/small.m4s")  # SNI: caddy wants a name
        for label in PEER_SIZES:
            for _ in range(3 * workers):
                httpx.get(f"http://127.0.0.1:{ph}/media/bench/obj-{label}.m4s")
        for label, size in PEER_SIZES.items():
            path = f"/media/bench/obj-{label}.m4s"
            for server, port in (("caddy", pc), ("edge", pe)):
                rps, mib = run_gtlsclient(port, path, PEER_LOADS[label], size)
                out.append(LoadResult(server, "h3-1350", label, rps, mib, "gtlsclient"))
                print(_fmt(out[-1]), flush=True)
    return out


# ------------------------------------------------------------------ stampede

def origin_media_fetches(origin: str) -> int:
    import httpx

    text = httpx.get(origin + "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("abr_origin_requests_total") and 'method="GET"' in line \
                and 'route="media"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _read_response(sock: socket.socket) -> bytes:
    """Read one HTTP/1.1 response with Content-Length from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(1 << 20)
    return head


def stampede(host: str, port: int, path: str, warm_path: str,
             clients: int) -> tuple[list[float], list[float], int]:
    """``clients`` keep-alive connections, warmed up, then one request each written in a
    tight loop (all within a few ms: a real stampede), then every response read with
    a selector. Returns per-client TTFB (first body byte) and completion times, and the
    number of failed responses."""
    import selectors

    socks = []
    for _ in range(clients):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(f"GET {warm_path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        _read_response(s)
        socks.append(s)
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    state: dict[int, dict[str, object]] = {}
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        state[i] = {"buf": b"", "t0": 0.0, "ttfb": None, "len": None, "got": 0, "end": None}
    for i, s in enumerate(socks):
        state[i]["t0"] = time.perf_counter()
        s.send(req)
    remaining = clients
    errors = 0
    cache_tags: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while remaining and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            i = key.data
            st = state[i]
            try:
                chunk = key.fileobj.recv(256 * 1024)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            now = time.perf_counter()
            if not chunk:
                errors += 1
                remaining -= 1
                sel.unregister(key.fileobj)
                continue
            if st["len"] is None:
                st["buf"] = bytes(st["buf"]) + chunk  # type: ignore[operator]
                buf = st["buf"]
                assert isinstance(buf, bytes)
                if b"\r\n\r\n" not in buf:
                    continue
                head, _, body = buf.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                c = re.search(rb"(?i)\nx-cache(?:-status)?:\s*([^\r]+)", head)
                tag = c.group(1).decode() if c else "?"
                cache_tags[tag] = cache_tags.get(tag, 0) + 1
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                st["len"] = int(m.group(1)) if m else 0
                st["got"] = len(body)
                st["buf"] = b""
            else:
                st["got"] = int(st["got"]) + len(chunk)  # type: ignore[call-overload]
            if st["ttfb"] is None and int(st["got"]) > 0:  # type: ignore[call-overload]
                st["ttfb"] = now - float(st["t0"])  # type: ignore[arg-type]
            if int(st["got"]) >= int(st["len"]):  # type: ignore[call-overload]
                st["end"] = now - float(st["t0"])  # type: ignore[arg-type]
                remaining -= 1
                sel.unregister(key.fileobj)
    for s in socks:
        s.close()
    print(f"  cache results: {cache_tags}", flush=True)
    errors += remaining
    ttfb = [float(st["ttfb"]) for st in state.values() if st["ttfb"] is not None]  # type: ignore[arg-type]
    ends = [float(st["end"]) for st in state.values() if st["end"] is not None]  # type: ignore[arg-type]
    return ttfb, ends, errors


def run_stampede(server: str, base: str, origin: str, media: Path, clients: int) -> StampedeResult:
    name = f"new-{server}-{int(time.time() * 1000)}.m4s"
    shutil.copy(media / "bench" / "obj-1m.m4s", media / "bench" / name)
    before = origin_media_fetches(origin)
    host, _, port = base.removeprefix("http://").rpartition(":")
    ttfb, total, errors = stampede(host, int(port), f"/media/bench/{name}",
                                   "/media/bench/small.m4s", clients)
    time.sleep(0.3)
    fetched = origin_media_fetches(origin) - before
    ttfb.sort()
    return StampedeResult(server, clients, fetched, statistics.median(ttfb) * 1000,
                          ttfb[int(0.9 * len(ttfb))] * 1000, statistics.median(total) * 1000,
                          errors)


# ------------------------------------------------------------------ main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=6, help="seconds per load run (default 6)")
    ap.add_argument("--workers", type=int, default=2, help="edge and nginx workers (default 2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--h2-connections", type=int, default=8)
    ap.add_argument("--h2-streams", type=int, default=8)
    ap.add_argument("--h3-connections", type=int, default=4)
    ap.add_argument("--h3-streams", type=int, default=16)
    ap.add_argument("--quic-datagram", type=int, default=65000,
                    help="edge and h3 client QUIC datagram size (default 65000: loopback's MTU "
                         "is 64 KiB)")
    ap.add_argument("--clients", type=int, default=200, help="stampede clients (default 200)")
    ap.add_argument("--only", default="",
                    help="comma list of h1,h2,h3,h3peer,stampede (default all)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--h3-load", help=argparse.SUPPRESS)
    ap.add_argument("--streams", type=int, default=8, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.h3_load:  # child mode
        hostport, _, path = args.h3_load.partition("/")
        host, _, port = hostport.rpartition(":")
        rps, mibps = asyncio.run(h3_load(host, int(port), "/" + path, args.duration,
                                         args.connections, args.streams, args.quic_datagram))
        print(json.dumps({"rps": rps, "mibps": mibps}))
        return 0
    only = set(args.only.split(",")) if args.only else {"h1", "h2", "h3", "h3peer", "stampede"}
    ensure_tools()
    import httpx

    work = Path(tempfile.mkdtemp(prefix="abr-edge-bench-"))
    media = work / "media"
    (media / "bench").mkdir(parents=True)
    (media / "bench" / "title.json").write_text('{"format": 1, "title": "bench"}')
    for label, size in {**SIZES, **PEER_SIZES}.items():
        (media / "bench" / f"obj-{label}.m4s").write_bytes(os.urandom(size))
    (media / "bench" / "small.m4s").write_bytes(os.urandom(1024))
    po, pe, ph, pn1, pn2 = (free_port() for _ in range(5))
    origin = f"http://127.0.0.1:{po}"
    loads: list[LoadResult] = []
    stamps: list[StampedeResult] = []
    nginx_dir = work / "nginx"
    nginx_dir.mkdir()
    with background([PY, "-m", "abrstack", "origin", "--media", str(media), "--port", str(po)],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        wait_http(origin + "/healthz")
        with background([PY, "-m", "abrstack", "edge", "--origin", origin, "--port", str(pe),
                   "--http-port", str(ph), "--cache-dir", str(work / "edge"), "--workers",
                   str(args.workers), "--access-log", "off", "--quic-datagram",
                   str(args.quic_datagram)],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            wait_http(f"http://127.0.0.1:{ph}/healthz")
            cert, key = work / "edge" / "tls" / "edge-cert.pem", work / "edge" / "tls" / "edge-key.pem"
            (nginx_dir / "nginx.conf").write_text(NGINX_CONF.format(
                workers=args.workers, dir=nginx_dir, origin_port=po, h1_port=pn1, h2_port=pn2,
                cert=cert, key=key))
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            with background([nginx, "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir),
                       "-g", "daemon off;"], stderr=subprocess.DEVNULL):
                servers = {"edge": (f"http://127.0.0.1:{ph}", f"https://127.0.0.1:{pe}"),
                           "nginx": (f"http://127.0.0.1:{pn1}", f"https://127.0.0.1:{pn2}")}
                wait_http(servers["nginx"][0] + "/media/bench/small.m4s")
                for h1, _ in servers.values():  # warm both caches
                    for label in [*SIZES, "small"]:
                        p = f"/media/bench/obj-{label}.m4s" if label != "small" else \
                            "/media/bench/small.m4s"
                        for _ in range(3 * args.workers):
                            r = httpx.get(h1 + p)
                        state = r.headers.get("x-cache") or r.headers.get("x-cache-status")
                        assert state == "HIT", (h1, p, state)
                time.sleep(0.5)
                for label in SIZES:
                    path = f"/media/bench/obj-{label}.m4s"
                    for server, (h1, h2) in servers.items():
                        if "h1" in only:
                            rps, mib = run_wrk(h1 + path, args.duration, args.connections)
                            loads.append(LoadResult(server, "h1", label, rps, mib, "wrk"))
                            print(_fmt(loads[-1]), flush=True)
                        if "h2" in only:
                            rps, mib = run_h2load(h2 + path, args.duration, args.h2_connections,
                                                  args.h2_streams)
                            loads.append(LoadResult(server, "h2", label, rps, mib, "h2load"))
                            print(_fmt(loads[-1]), flush=True)
                    if "h3" in only:
                        rps, mib = h3_load_subprocess("127.0.0.1", pe, path, args.duration,
                                                      args.h3_connections, args.h3_streams,
                                                      args.quic_datagram)
                        loads.append(LoadResult("edge", "h3", label, rps, mib, "aioquic"))
                        print(_fmt(loads[-1]), flush=True)
                if "stampede" in only:
                    for server, (h1, _) in servers.items():
                        stamps.append(run_stampede(server, h1, origin, media, args.clients))
                        print(stamps[-1], flush=True)
        if "h3peer" in only:
            loads += h3_peers(work, media, origin, args.workers)
    report = summarise(loads, stamps)
    print(report["table"])
    if args.json:
        args.json.write_text(json.dumps({"loads": [asdict(x) for x in loads],
                                         "stampede": [asdict(x) for x in stamps],
                                         "ratios": report["ratios"]}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _fmt(r: LoadResult) -> str:
    return (f"{r.server:6s} {r.protocol} {r.size:5s} {r.requests_per_s:10.0f} req/s "
            f"{r.mib_per_s:9.1f} MiB/s  ({r.tool})")


def summarise(loads: list[LoadResult], stamps: list[StampedeResult]) -> dict[str, object]:
    by = {(x.server, x.protocol, x.size): x for x in loads}
    lines = ["", "server proto size       req/s      MiB/s  tool"]
    lines += [_fmt(x) for x in loads]
    ratios: dict[str, object] = {}

    def ratio(name: str, a: tuple[str, str, str], b: tuple[str, str, str], goal: float) -> None:
        if a in by and b in by and by[b].requests_per_s > 0:
            v = by[a].requests_per_s / by[b].requests_per_s
            ratios[name] = {"ratio": round(v, 3), "goal": goal, "met": v >= goal}
            lines.append(f"{name:34s} {v:6.2f}x  (goal >= {goal}x) "
                         f"{'MET' if v >= goal else 'MISSED'}")

    lines.append("")
    for size in SIZES:
        ratio(f"h1 {size} edge/nginx", ("edge", "h1", size), ("nginx", "h1", size),
              0.7 if size == "1m" else 0.0)
        ratio(f"h2 {size} edge/nginx", ("edge", "h2", size), ("nginx", "h2", size), 0.5)
        ratio(f"h3 {size} edge h3/edge h2", ("edge", "h3", size), ("edge", "h2", size), 0.7)
    for size in PEER_SIZES:
        ratio(f"h3 {size} edge/caddy (gtlsclient)", ("edge", "h3-1350", size),
              ("caddy", "h3-1350", size), 0.5)
    if stamps:
        lines.append("")
        for s in stamps:
            lines.append(f"stampede {s.server:6s} {s.clients} clients: {s.origin_fetches} origin "
                         f"fetch(es), TTFB median {s.ttfb_median_ms:.1f} ms p90 "
                         f"{s.ttfb_p90_ms:.1f} ms, complete median {s.complete_median_ms:.1f} ms,"
                         f" errors {s.errors}")
        e = next((s for s in stamps if s.server == "edge"), None)
        n = next((s for s in stamps if s.server == "nginx"), None)
        if e and n and n.ttfb_median_ms > 0:
            v = e.ttfb_median_ms / n.ttfb_median_ms
            ratios["stampede ttfb edge/nginx"] = {"ratio": round(v, 3), "goal": 0.1,
                                                  "met": v <= 0.1 and e.origin_fetches == 1}
            lines.append(f"stampede TTFB edge/nginx {v:6.3f}x (goal <= 0.1x, 1 fetch): "
                         f"{'MET' if v <= 0.1 and e.origin_fetches == 1 else 'MISSED'}")
    return {"table": "\n".join(lines), "ratios": ratios}


if __name__ == "__main__":
    sys.exit(main())
