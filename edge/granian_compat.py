"""What the edge takes from granian beyond its public API: one module, for one version.

granian's embedded server (``granian.server.embed.Server``) binds a socket of its own. The
edge binds its sockets itself (``SO_REUSEPORT``, TCP and UDP on one port number, port 0 in
tests) and hands granian a duplicate of the descriptor; granian has no public way to take
one, so :func:`embedded_server` overrides its ``_init_shared_socket`` and builds the private
``granian._granian.SocketHolder``. That is written for granian :data:`GRANIAN_VERSION`
exactly: on any other version :func:`check` refuses to start with one sentence, rather
than run on internals that may have changed. Nothing happens at import; the server calls
:func:`embedded_server` when it starts.
"""

from __future__ import annotations

from typing import Any

from edge.errors import EdgeError

GRANIAN_VERSION = "2.8.9"
"""The granian release this module was written for and tested against."""


def check(version: str | None = None) -> None:
    """Refuse any granian but :data:`GRANIAN_VERSION` (``version`` defaults to the
    installed one)."""
    if version is None:
        import granian

        version = granian.__version__
    if version != GRANIAN_VERSION:
        raise EdgeError(
            f"the edge needs granian {GRANIAN_VERSION} (it hands granian its own sockets "
            f"through internals of that version; edge/granian_compat.py), but {version} is "
            f"installed: pip install granian=={GRANIAN_VERSION}.")


def embedded_server(fd: int, backlog: int, app: Any, **kwargs: Any) -> Any:
    """granian's embedded ``Server`` for ``app``, serving the already bound socket ``fd``
    (granian owns and closes it); ``kwargs`` are the server's public options."""
    check()
    from granian._granian import SocketHolder
    from granian.server.embed import Server

    class OnSocket(Server):
        def _init_shared_socket(self) -> None:
            self._ssp = None
            self._shd = SocketHolder(fd, False, backlog)  # type: ignore[call-arg,assignment]
            self._sfd = fd  # type: ignore[assignment]

    return OnSocket(app, backlog=backlog, **kwargs)


__all__ = ["GRANIAN_VERSION", "check", "embedded_server"]
