"""``abr fleet up|status|down``: a CDN fleet (Redis, origin, shield, edges, steering) as
background processes on this machine, from one fleet spec (:mod:`abrstack.fleetspec`).

``up`` starts every service in its own session (a terminal's Ctrl-C does not reach them),
waits until each answers ``/healthz``, writes ``STATE/fleet.json`` (every endpoint, pid and
log) and returns; ``status`` reads it and asks each service; ``down`` stops the processes
that ``fleet.json`` names (checking that each pid is still the process it started).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from abrstack.errors import AbrError
from abrstack.fleetspec import (
    EdgeSpec,
    FleetSpec,
    edge_argv,
    load_spec,
    origin_argv,
    shorthand,
    steer_argv,
)
from abrstack.procs import pid_alive

PROGRAM = (sys.executable, "-m", "abrstack")
STATE_FILE = "fleet.json"
START_TIMEOUT_S = 30.0


class FleetError(AbrError):
    """The fleet could not be started, read or stopped."""


@dataclass
class Service:
    """One running service, as ``fleet.json`` records it."""

    name: str
    kind: str
    """``redis``, ``origin``, ``shield``, ``edge`` or ``steer``."""
    pid: int | None
    """None when it was given (``--redis URL``, ``--origin URL``), not started."""
    url: str
    """Base URL (cleartext HTTP/1.1; ``redis://`` for Redis)."""
    log: str = ""
    argv: list[str] = field(default_factory=list)
    h2: str = ""
    """TLS base URL (h2, http/1.1) of an edge or shield."""
    h3: str = ""
    """QUIC base URL (h3) of an edge or shield: the same port over UDP."""
    spki: str = ""
    """Base64 SHA-256 of the edge's certificate SPKI (Chromium's --ignore-certificate-errors-spki-list)."""
    cache_dir: str = ""


def steering_available() -> bool:
    """Whether this installation has ``abr steer`` (the steering service)."""
    import importlib.util

    return importlib.util.find_spec("steer.cli") is not None


# ------------------------------------------------------------------ processes

def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
        if lines:
            return lines[-1].strip()[:300]
    return "no message"


def _wait_line(proc: subprocess.Popen[bytes], log: Path, pattern: str, what: str,
               timeout_s: float = START_TIMEOUT_S) -> re.Match[str]:
    """Wait until ``log`` has a line matching ``pattern`` (the service's start banner)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            m = rx.search(log.read_text(errors="replace"))
            if m:
                return m
        if proc.poll() is not None:
            raise FleetError(f"the {what} exited at start ({_tail(log)}).")
        time.sleep(0.05)
    raise FleetError(f"the {what} did not start within {timeout_s:.0f} s ({_tail(log)}).")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, log: Path, what: str,
                  timeout_s: float = START_TIMEOUT_S) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise FleetError(f"the {what} exited at start ({_tail(log)}).")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise FleetError(f"the {what} did not answer {url}/healthz within {timeout_s:.0f} s.")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ours(svc: Service) -> bool:
    """Whether ``svc.pid`` still runs the process ``up`` started (not a recycled pid)."""
    if svc.pid is None or not pid_alive(svc.pid):
        return False
    cmd = _cmdline(svc.pid).strip()
    if svc.kind == "redis":  # redis-server retitles itself "redis-server HOST:PORT"
        return "redis-server" in cmd and f":{svc.url.rsplit(':', 1)[-1].split('/')[0]}" in cmd
    return cmd == " ".join(svc.argv)


def stop(svc: Service, timeout_s: float = 10.0) -> bool:
    """SIGTERM the service's process group, then SIGKILL; True if it was running."""
    if not _ours(svc):
        return False
    assert svc.pid is not None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(svc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(svc.pid, os.WNOHANG)  # reap it when it is our own child (tests)
        if not pid_alive(svc.pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(svc.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(svc.pid, 0)
    return True


# ------------------------------------------------------------------------- up

@dataclass
class Fleet:
    """A running fleet: what ``fleet.json`` holds."""

    state: str
    redis: Service
    origin: Service
    shield: Service | None
    edges: list[Service]
    steering: Service | None
    spec: dict[str, Any] = field(default_factory=dict)

    def services(self) -> list[Service]:
        out = [self.redis, self.origin, *([self.shield] if self.shield else []), *self.edges]
        return out + ([self.steering] if self.steering else [])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fleet:
        def svc(x: Any) -> Service | None:
            return None if x is None else Service(**x)
        redis, origin = svc(d["redis"]), svc(d["origin"])
        assert redis is not None and origin is not None
        return cls(d["state"], redis, origin, svc(d.get("shield")),
                   [Service(**e) for e in d.get("edges", [])], svc(d.get("steering")),
                   d.get("spec", {}))


def read_fleet(state: Path) -> Fleet:
    path = state / STATE_FILE
    try:
        return Fleet.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise FleetError(f"no fleet in {state} ({path} does not exist); start one with "
                         "`abr fleet up`.") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FleetError(f"cannot read {path}: {exc}.") from None


def _start_redis(state: Path, log_dir: Path) -> Service:
    from abrstack.redisproc import redis_argv

    exe = shutil.which("redis-server")
    if exe is None:
        raise FleetError("redis-server is not installed; run `make setup` or pass --redis URL.")
    from abrstack.stack import free_port

    port = free_port()
    argv = redis_argv(exe, port, state / "redis")
    (state / "redis").mkdir(parents=True, exist_ok=True)
    log = log_dir / "redis.log"
    proc = _spawn(argv, log)
    url = f"redis://127.0.0.1:{port}/0"
    svc = Service("redis", "redis", proc.pid, url, str(log), argv)
    from abrstack.redisproc import answers_ping

    deadline = time.monotonic() + 10
    while not answers_ping(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(svc)
            raise FleetError(f"redis-server did not start on port {port} ({_tail(log)}).")
        time.sleep(0.02)
    return svc


def _start_edge(spec: FleetSpec, node: EdgeSpec, urls: dict[str, str], redis_url: str | None,
                state: Path, host: str) -> tuple[Service, subprocess.Popen[bytes]]:
    cache = state / "cache" / node.name
    argv = edge_argv(spec, node, urls=urls, cache_dir=cache, redis_url=redis_url, host=host,
                     access_log=str(state / "logs" / f"{node.name}-access.log"), program=PROGRAM)
    log = state / "logs" / f"{node.name}.log"
    proc = _spawn(argv, log)
    return Service(node.name, node.tier, proc.pid, "", str(log), argv, cache_dir=str(cache)), proc


def _edge_ready(svc: Service, proc: subprocess.Popen[bytes]) -> None:
    from edge.tls import spki_sha256_b64

    log = Path(svc.log)
    m = _wait_line(proc, log, r"abr edge: https://([\w.:\[\]-]+):(\d+).*?http://([\w.:\[\]-]+):(\d+)",
                   svc.name)
    svc.h2 = f"https://{m.group(1)}:{m.group(2)}"
    svc.h3 = svc.h2
    svc.url = f"http://{m.group(3)}:{m.group(4)}"
    _wait_healthy(svc.url, proc, log, svc.name)
    cert = Path(svc.cache_dir) / "tls" / "edge-cert.pem"
    with contextlib.suppress(OSError, ValueError):
        svc.spki = spki_sha256_b64(cert)


def up(spec: FleetSpec, state: Path, media: Path | None = None, host: str = "127.0.0.1") -> Fleet:
    """Start the fleet; on any failure stop what was started and raise :class:`FleetError`."""
    state = state.resolve()
    if (state / STATE_FILE).exists():
        old = read_fleet(state)
        if any(_ours(s) for s in old.services()):
            raise FleetError(f"a fleet already runs from {state}; stop it with "
                             f"`abr fleet down --state {state}` first.")
    media_dir = (media or Path(spec.media)).resolve()
    if spec.origin.url is None and not media_dir.is_dir():
        raise FleetError(f"the media folder {media_dir} does not exist.")
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started: list[Service] = []
    try:
        if spec.redis:
            redis = Service("redis", "redis", None, spec.redis)
        else:
            redis = _start_redis(state, logs)
            started.append(redis)
        if spec.origin.url:
            origin = Service(spec.origin.name, "origin", None, spec.origin.url)
        else:
            argv = origin_argv(spec, media=media_dir, host=host, program=PROGRAM,
                               redis_url=redis.url)
            log = logs / "origin.log"
            proc = _spawn(argv, log)
            origin = Service(spec.origin.name, "origin", proc.pid, "", str(log), argv)
            started.append(origin)
            m = _wait_line(proc, log, r"serving .* on (http://[\w.:\[\]-]+)", "origin")
            origin.url = m.group(1)
            _wait_healthy(origin.url, proc, log, "origin")
        urls = {spec.origin.name: origin.url}
        shield = None
        if spec.shield is not None:
            shield, sproc = _start_edge(spec, spec.shield, urls, None, state, host)
            started.append(shield)
            _edge_ready(shield, sproc)
            urls[shield.name] = shield.url
        edges = []
        for node in spec.edges:  # all start at once, then each is waited for
            svc, proc = _start_edge(spec, node, urls, redis.url, state, host)
            started.append(svc)
            edges.append((svc, proc))
        for svc, proc in edges:
            _edge_ready(svc, proc)
            urls[svc.name] = svc.url
        steering = None
        if spec.steering.enabled and steering_available():
            argv = steer_argv(spec, urls=urls, redis_url=redis.url, host=host, program=PROGRAM)
            log = logs / "steer.log"
            proc = _spawn(argv, log)
            steering = Service(spec.steering.name, "steer", proc.pid, "", str(log), argv)
            started.append(steering)
            m = _wait_line(proc, log, r"(http://[\w.:\[\]-]+:\d+)", "steering service")
            steering.url = m.group(1)
            _wait_healthy(steering.url, proc, log, "steering service")
    except BaseException:
        for s in reversed(started):
            stop(s)
        raise
    fleet = Fleet(str(state), redis, origin, shield, [s for s, _ in edges], steering,
                  asdict(spec))
    tmp = state / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(fleet.to_dict(), indent=2) + "\n")
    os.replace(tmp, state / STATE_FILE)
    return fleet


def down(state: Path) -> list[str]:
    """Stop every process ``fleet.json`` names (edges first, Redis last); their names."""
    fleet = read_fleet(state.resolve())
    stopped = [s.name for s in reversed(fleet.services()) if stop(s)]
    with contextlib.suppress(FileNotFoundError):
        (state.resolve() / STATE_FILE).unlink()
    return stopped


# ------------------------------------------------------------------------ CLI

def register(subparsers: Any) -> None:
    """Add ``abr fleet`` to the ``abr`` command line."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "fleet", help="run a CDN fleet: origin, shield, edges, steering (up, status, down)",
        description="A CDN fleet on this machine from one fleet spec (YAML; --edges and "
                    "--shield are its shorthand): a private Redis, an origin, a shield tier, "
                    "N edges and the steering service as background processes.")
    sub = p.add_subparsers(dest="fleet_command", metavar="ACTION")
    u = sub.add_parser(
        "up", help="start the fleet, print its endpoints, write STATE/fleet.json",
        description="Start (unless given) a private Redis, an origin, a shield, N edges and "
                    "the steering service as background processes, wait until each answers "
                    "/healthz, print every endpoint (each edge's h1, h2, h3 URLs and SPKI), "
                    "write STATE/fleet.json and return. Caches live in STATE/cache and "
                    "survive a down/up.")
    u.add_argument("--spec", type=Path, default=None, metavar="FILE",
                   help="fleet spec (YAML, see deploy/fleet.example.yaml); the other options "
                        "override it")
    u.add_argument("--media", type=Path, default=None, help="media folder (default: the "
                                                            "spec's, else media)")
    u.add_argument("--edges", type=int, default=None, metavar="N", help="edges (default 2)")
    u.add_argument("--shield", action=argparse.BooleanOptionalAction, default=None,
                   help="a shield tier between the edges and the origin")
    u.add_argument("--origin", default=None, metavar="URL", help="an origin that already "
                                                                "runs (default: start one)")
    u.add_argument("--redis", default=None, metavar="URL",
                   help="event bus (default: a private redis-server in STATE/redis)")
    u.add_argument("--state", type=Path, default=Path(".fleet"),
                   help="state folder: fleet.json, logs, caches (default .fleet)")
    u.add_argument("--json", action="store_true", help="print fleet.json instead of a table")
    u.set_defaults(handler=_up)
    s = sub.add_parser(
        "status", help="each service: up/down, load, hit ratio, titles held",
        description="Ask each service of the fleet in STATE/fleet.json (/healthz, /metrics): "
                    "up or down, requests being answered, hit ratio, origin offload (share of "
                    "bytes served without an upstream fetch), titles held, titles filled "
                    "proactively; then the fleet-wide figures. Exit code 1 if one is down.")
    s.add_argument("--state", type=Path, default=Path(".fleet"),
                   help="state folder (default .fleet)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=_status)
    d = sub.add_parser(
        "down", help="stop every service of the fleet",
        description="Stop the processes that STATE/fleet.json names (edges first, Redis "
                    "last; SIGTERM, then SIGKILL after 10 s), checking each pid still runs "
                    "the command it was started with.")
    d.add_argument("--state", type=Path, default=Path(".fleet"),
                   help="state folder (default .fleet)")
    d.set_defaults(handler=_down)
    from abrstack.k8s_cli import register as register_k8s

    register_k8s(sub)  # abr fleet k8s: the same spec as Kubernetes manifests

    def _help(args: argparse.Namespace) -> int:
        p.print_help()
        return 2
    p.set_defaults(handler=_help)


def spec_from_args(args: argparse.Namespace) -> FleetSpec:
    """The spec file (or the shorthand) with the command line's overrides."""
    from dataclasses import replace

    from abrstack.fleetspec import OriginSpec, parse_spec

    if args.spec is not None:
        spec = load_spec(args.spec)
        if args.edges is not None or args.shield is not None:
            doc = asdict(spec)
            raise FleetError("--edges and --shield are the shorthand for a spec; with --spec, "
                             f"set edges and shield in {args.spec} (it has {len(doc['edges'])} "
                             "edges).")
    else:
        spec = shorthand(edges=2 if args.edges is None else _edges(args.edges),
                         shield=bool(args.shield))
    if args.origin:
        spec = replace(spec, origin=OriginSpec(**{**asdict(spec.origin), "url": args.origin}))
    if args.redis:
        spec = replace(spec, redis=args.redis)
    if args.media:
        spec = replace(spec, media=str(args.media))
    return parse_spec(_as_doc(spec))  # validate the overrides as a spec


def _edges(n: int) -> int:
    from abrstack.fleetspec import MAX_EDGES

    if not 1 <= n <= MAX_EDGES:
        raise FleetError(f"--edges must be from 1 to {MAX_EDGES}, not {n}.")
    return n


def _as_doc(spec: FleetSpec) -> dict[str, Any]:
    """A spec back as the document it could have been parsed from."""
    d = asdict(spec)
    edges = d.pop("edges")
    first = edges[0]
    doc: dict[str, Any] = {
        "media": d["media"], "redis": d["redis"], "origin": d["origin"],
        "edges": {"names": [e["name"] for e in edges],
                  **{k: first[k] for k in ("cache_size", "memory_size", "workers", "prefetch")}},
        "steering": d["steering"], "fill": d["fill"]}
    if first["port"]:
        doc["edges"]["base_port"] = first["port"]
    if first["http_port"]:
        doc["edges"]["base_http_port"] = first["http_port"]
    if d["shield"] is not None:
        sh = {k: v for k, v in d["shield"].items() if k != "tier"}
        doc["shield"] = {**sh, "fallback_to_origin": d["shield_fallback"]}
    else:
        doc["shield"] = False
    return doc


def _up(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    fleet = up(spec, args.state, Path(spec.media))
    if args.json:
        print(json.dumps(fleet.to_dict(), indent=2))
        return 0
    print(f"abr fleet: up ({fleet.state}/{STATE_FILE})")
    for s in fleet.services():
        where = s.url if not s.h2 else f"h1 {s.url}  h2 {s.h2}  h3 {s.h3}  spki {s.spki}"
        print(f"  {s.name:<10} {s.kind:<7} {'pid ' + str(s.pid) if s.pid else 'given':<11} {where}")
    if spec.steering.enabled and fleet.steering is None:
        print("  (no steering service: `abr steer` is not installed here)")
    print(f"stop with: abr fleet down --state {args.state}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from abrstack.fleetstatus import render, status

    rows = status(read_fleet(args.state.resolve()))
    print(json.dumps(rows, indent=2) if args.json else render(rows))
    return 0 if all(r["up"] for r in rows) else 1


def _down(args: argparse.Namespace) -> int:
    names = down(args.state)
    print(f"abr fleet: stopped {', '.join(names) if names else 'nothing (nothing was running)'}")
    return 0


@contextlib.contextmanager
def running_fleet(spec: FleetSpec, state: Path, media: Path | None = None) -> Iterator[Fleet]:
    """:func:`up`, then :func:`down` when the block ends (also on Ctrl-C or failure)."""
    fleet = up(spec, state, media)
    try:
        yield fleet
    finally:
        down(state)
