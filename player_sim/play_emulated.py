"""`abr play URL --emulate TRACE`: the players run in the client namespace of an emulated link.

The parent (root namespace) brings the link up, relays the server namespace's port to the
URL's server on loopback (:mod:`player_sim.netem_relay`), and runs ``abr play`` again inside
the client namespace with the URL's host replaced by the link's server address. HTTPS: the
edge's self-signed certificate names 127.0.0.1 and localhost, not the link's address, so give
``--insecure`` (or a certificate that names 10.203.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urlsplit, urlunsplit

from player_sim.errors import PlayerError
from player_sim.linkmodel import LinkConfig, Queue
from player_sim.netem import SERVER_ADDR, EmulatedLink, root_missing
from player_sim.netem_relay import relay, sockets_in_server_ns

__all__ = ["link_config", "root_missing", "run"]


def link_config(args: argparse.Namespace) -> LinkConfig:
    """The link of ``--delay-ms``, ``--loss`` and ``--queue-bytes`` (a bad value is a PlayerError)."""
    return LinkConfig(delay_ms=args.delay_ms, loss=args.loss, queue_bytes=args.queue_bytes, queue=Queue(args.aqm))


def _child_argv(args: argparse.Namespace, url: str) -> list[str]:
    argv = [sys.executable, "-m", "abrstack", "play", url, "--abr", args.abr, "--speed", str(args.speed),
            "--players", str(args.players), "--buffer-s", str(args.buffer_s),
            "--quic-datagram", str(args.quic_datagram), "--max-retries", str(args.max_retries)]
    if args.protocol:
        argv += ["--protocol", args.protocol]
    if args.out:
        argv += ["--out", str(args.out.resolve())]
    if args.cacert:
        argv += ["--cacert", args.cacert]
    if args.beacon:
        argv += ["--beacon", args.beacon]
    argv += ["--beacon-interval", str(args.beacon_interval)]
    for flag in ("no_cmcd", "insecure", "json", "no_beacon"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    for h in args.allow_host:
        argv += ["--allow-host", h]
    if args.level is not None:
        argv += ["--level", args.level]
    return argv


def run(args: argparse.Namespace, config: LinkConfig) -> int:
    """Play ``args.url`` over the emulated link; the child's exit code."""
    parts = urlsplit(args.url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise PlayerError(f"--emulate needs a server on this machine (127.0.0.1 or localhost), not {parts.hostname}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    url = urlunsplit((parts.scheme, f"{SERVER_ADDR}:{port}", parts.path, parts.query, parts.fragment))
    if not args.emulate.is_file():
        raise PlayerError(f"trace {args.emulate} is not a file")
    with EmulatedLink(args.emulate, config, log=args.packet_log) as link:
        tcp, udp = sockets_in_server_ns(link, port)

        async def main() -> int:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(relay(tcp, udp, port, done))
            proc = await asyncio.create_subprocess_exec("ip", "netns", "exec", link.client_ns,
                                                        *_child_argv(args, url))
            try:
                return await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                done.set_result(None)
                await task

        print(f"emulated link: {args.emulate.name}, delay {config.delay_ms:g} ms each way, loss {config.loss:g}, "
              f"queue {config.queue_bytes or 'unbounded'} bytes {config.queue.value}; players reach {url}", file=sys.stderr)
        return asyncio.run(main())
