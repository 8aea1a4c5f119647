"""Packet-level link emulation between two network namespaces (the I/O shell of linkmodel).

``EmulatedLink`` makes two namespaces, ``abr-<pid>-srv`` (the edge's side) and ``abr-<pid>-cli``
(the players' side), each holding one end of the link: a TUN device. A forwarder process in
the root namespace reads IP packets from each TUN, passes them through a
:class:`~player_sim.linkmodel.Direction` (uplink: players → edge; downlink: edge → players)
and writes them to the other TUN. TCP and UDP alike cross it; nothing else joins the two
namespaces, so the link is the players' only way to the server.

Cleanup: the parent deletes the namespaces on exit and on SIGTERM/SIGINT; the forwarder
deletes them too when its parent dies (its stdin reaches EOF); and every new run deletes
namespaces ``abr-<pid>-*`` whose pid is gone (after ``kill -9`` of both).
Needs root (``CAP_NET_ADMIN``); :func:`root_missing` says why not in one sentence.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from abrstack.procs import pid_alive, stop_process
from player_sim.errors import PlayerError
from player_sim.linkmodel import Direction, LinkConfig, PacketLogged, Queue, parse_opportunities

PREFIX = "abr-"
SERVER_ADDR = "10.203.0.1"
"""The edge's address inside its namespace."""
CLIENT_ADDR = "10.203.0.2"
"""The players' address inside theirs."""
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000


def root_missing() -> str | None:
    """None when link emulation can run here, else one sentence saying why not."""
    if os.geteuid() != 0:
        return "link emulation needs root (network namespaces and TUN devices); falling back to in-client shaping"
    if not os.path.exists("/dev/net/tun"):
        return "link emulation needs /dev/net/tun, which this machine lacks; falling back to in-client shaping"
    return None


def _ip(*args: str, check: bool = True) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise PlayerError(f"ip {' '.join(args)} failed: {r.stderr.strip()}")



def clean_stale() -> list[str]:
    """Delete namespaces ``abr-<pid>-*`` of pids that no longer run; their names."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    removed = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) >= 3 and name.startswith(PREFIX) and parts[1].isdigit() and not pid_alive(int(parts[1])):
            _ip("netns", "delete", name, check=False)
            removed.append(name)
    return removed


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


def _place(dev: str, ns: str, addr: str, peer: str) -> None:
    _ip("link", "set", "dev", dev, "netns", ns)
    _ip("-n", ns, "addr", "add", addr, "peer", peer, "dev", dev)
    _ip("-n", ns, "link", "set", "dev", dev, "mtu", "1500", "up")


def _write_log(f, direction: str, log: list[PacketLogged]) -> None:  # type: ignore[no-untyped-def]
    for p in log:
        qd = "" if p.queue_delay_ms is None else f"{p.queue_delay_ms:.3f}"
        f.write(f"{p.t_ms:.3f},{direction},{p.size_bytes},{qd},{p.dropped or ''}\n")
    log.clear()


def forward(args: argparse.Namespace) -> int:
    """The forwarder's loop: TUN ↔ Direction ↔ TUN until stdin closes or SIGTERM."""
    text = Path(args.trace).read_text(encoding="utf-8")
    down_opps = parse_opportunities(Path(args.trace).name, text)
    up_opps = parse_opportunities(Path(args.uplink_trace).name, Path(args.uplink_trace).read_text()) if args.uplink_trace else down_opps
    cfg = LinkConfig(args.delay_ms, args.loss, args.queue_bytes, args.queue_packets, Queue(args.aqm))
    tag = args.tag
    srv_dev, cli_dev = f"{tag}s", f"{tag}c"
    srv_fd, cli_fd = _open_tun(srv_dev), _open_tun(cli_dev)
    _place(srv_dev, args.server_ns, SERVER_ADDR, CLIENT_ADDR)
    _place(cli_dev, args.client_ns, CLIENT_ADDR, SERVER_ADDR)
    down, up = Direction(down_opps, cfg, seed=args.seed), Direction(up_opps, cfg, seed=args.seed + 1)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log = open(args.log, "w", buffering=1 << 20) if args.log else None  # noqa: SIM115
    if log:
        log.write("t_ms,direction,size_bytes,queue_delay_ms,dropped\n")
    poll = select.epoll()
    poll.register(srv_fd, select.EPOLLIN)
    poll.register(cli_fd, select.EPOLLIN)
    poll.register(sys.stdin.fileno(), select.EPOLLIN | select.EPOLLHUP)
    t0 = time.monotonic()
    print("ready", flush=True)
    # (source fd, the Direction it enters, destination fd)
    routes = {srv_fd: (down, cli_fd), cli_fd: (up, srv_fd)}
    try:
        while not stop:
            now = (time.monotonic() - t0) * 1000
            nexts = [t for t in (down.next_event_ms(), up.next_event_ms()) if t is not None]
            timeout = max(0.0, (min(nexts) - now) / 1000) if nexts else 0.5
            for fd, _ev in poll.poll(timeout):
                if fd not in routes:
                    stop = True  # the parent is gone: stdin closed
                    break
                d, _ = routes[fd]
                while True:
                    try:
                        packet = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    d.arrive(packet, (time.monotonic() - t0) * 1000)
            now = (time.monotonic() - t0) * 1000
            for d, out_fd in routes.values():
                for packet in d.advance(now):
                    # A full or vanished receiving TUN loses the packet, as a wire would.
                    with contextlib.suppress(OSError):
                        os.write(out_fd, packet)
            if log:
                _write_log(log, "down", down.log)
                _write_log(log, "up", up.log)
            else:
                down.log.clear()
                up.log.clear()
    finally:
        if log:
            log.close()
        os.close(srv_fd)
        os.close(cli_fd)
        if args.delete_on_exit:
            for ns in (args.server_ns, args.client_ns):
                _ip("netns", "delete", ns, check=False)
    return 0


class EmulatedLink:
    """Two namespaces joined by the emulated link, for the life of a ``with`` block."""

    def __init__(self, trace: Path, config: LinkConfig, log: Path | None = None, seed: int = 0,
                 uplink_trace: Path | None = None) -> None:
        self.trace, self.config, self.log, self.seed, self.uplink_trace = trace, config, log, seed, uplink_trace
        self.tag = f"{PREFIX}{os.getpid()}-{id(self) % 10000}"
        self.server_ns = f"{self.tag}-srv"
        self.client_ns = f"{self.tag}-cli"
        self.server_addr, self.client_addr = SERVER_ADDR, CLIENT_ADDR
        self._forwarder: subprocess.Popen[str] | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._old_handlers: dict[int, object] = {}

    def __enter__(self) -> EmulatedLink:
        why = root_missing()
        if why:
            raise PlayerError(why)
        # Read the trace now, so a bad trace is one sentence from this process.
        parse_opportunities(self.trace.name, self.trace.read_text(encoding="utf-8"))
        clean_stale()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            for ns in (self.server_ns, self.client_ns):
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            argv = [sys.executable, "-m", "player_sim.netem", "--trace", str(self.trace),
                    "--server-ns", self.server_ns, "--client-ns", self.client_ns,
                    "--tag", f"abr{os.getpid() % 100000}x{id(self) % 1000}",
                    "--delay-ms", str(self.config.delay_ms), "--loss", str(self.config.loss),
                    "--seed", str(self.seed), "--aqm", self.config.queue.value, "--delete-on-exit"]
            if self.config.queue_bytes is not None:
                argv += ["--queue-bytes", str(self.config.queue_bytes)]
            if self.config.queue_packets is not None:
                argv += ["--queue-packets", str(self.config.queue_packets)]
            if self.uplink_trace is not None:
                argv += ["--uplink-trace", str(self.uplink_trace)]
            if self.log is not None:
                argv += ["--log", str(self.log)]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            self._forwarder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True, env=env)
            assert self._forwarder.stdout is not None
            line = self._forwarder.stdout.readline()
            if line.strip() != "ready":
                err = self._forwarder.stderr.read() if self._forwarder.stderr else ""
                raise PlayerError(f"the link forwarder did not start: {err.strip().splitlines()[-1:] or 'no output'}")
        except BaseException:
            self.close()
            raise
        return self

    @property
    def forwarder_pid(self) -> int | None:
        """The forwarder's process id while the link is up (for CPU accounting in bench/netem.py)."""
        return self._forwarder.pid if self._forwarder is not None else None

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.close()
        raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)

    def popen(self, side: str, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the ``"server"`` or ``"client"`` namespace; it is killed on close."""
        ns = self.server_ns if side == "server" else self.client_ns
        p: subprocess.Popen[bytes] = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)  # type: ignore[call-overload]
        self._children.append(p)
        return p

    def close(self) -> None:
        """Stop children and the forwarder, delete both namespaces (idempotent)."""
        for p in self._children:
            if p.poll() is None:
                p.kill()
                p.wait()
        self._children.clear()
        if self._forwarder is not None:
            stop_process(self._forwarder, 5)
            self._forwarder = None
        for ns in (self.server_ns, self.client_ns):
            _ip("netns", "delete", ns, check=False)
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)  # type: ignore[arg-type]
        self._old_handlers.clear()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """Entry of the forwarder process (started by :class:`EmulatedLink`)."""
    p = argparse.ArgumentParser(prog="python -m player_sim.netem")
    p.add_argument("--trace", required=True)
    p.add_argument("--uplink-trace")
    p.add_argument("--server-ns", required=True)
    p.add_argument("--client-ns", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--queue-bytes", type=int)
    p.add_argument("--queue-packets", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--aqm", choices=[q.value for q in Queue], default="droptail")
    p.add_argument("--log")
    p.add_argument("--delete-on-exit", action="store_true")
    return forward(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
