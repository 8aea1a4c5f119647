"""Closing a TCP connection that made no progress, from the app's side.

granian (2.8) gives the app no way to reset an HTTP/2 stream or close a connection: a
client that keeps its window at 0 and answers PINGs keeps the connection, and what granian
buffered for its streams, for as long as it likes. Like nginx's ``send_timeout`` (which
closes the connection, not the stream), a response cut for a slow reader closes its TCP
connection here: the socket is found among this process's file descriptors (granian runs
in this process) by its two addresses and shut down, which granian then sees as the peer
gone. This is an operating-system call on our own process's socket, not a granian internal.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

FD_DIR = "/proc/self/fd"
MAX_FDS_SCANNED = 65_536


def _same(a: Any, b: Any) -> bool:
    """Socket addresses equal by host and port (IPv6 tuples carry flow info and scope)."""
    return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) >= 2 and len(b) >= 2
            and a[0] == b[0] and int(a[1]) == int(b[1]))


def close_connection(server: Any, client: Any) -> bool:
    """Shut down this process's TCP socket from ``server`` (host, port) to ``client``;
    False when there is none (already closed) or the addresses are unknown."""
    if not (isinstance(server, (tuple, list)) and isinstance(client, (tuple, list))):
        return False
    try:
        names = os.listdir(FD_DIR)[:MAX_FDS_SCANNED]
    except OSError:
        return False
    for name in names:
        try:
            fd = int(name)
            if not os.readlink(f"{FD_DIR}/{name}").startswith("socket:"):
                continue
            dup = os.dup(fd)
        except (OSError, ValueError):
            continue
        try:
            s = socket.socket(fileno=dup)  # family and type read from the socket itself
        except OSError:
            os.close(dup)
            continue
        with s:
            try:
                if s.type != socket.SOCK_STREAM or not _same(s.getpeername(), tuple(client)):
                    continue
                if not _same(s.getsockname(), tuple(server)):
                    continue
            except OSError:
                continue
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # acts on the socket; granian's fd sees EOF
            return True
    return False
