"""HTTP/3 serving: hypercorn's QUIC server with aioquic, tuned for throughput.

Tuning applied to hypercorn 0.18 / aioquic 1.7 (measured in bench/edge.py; see README):
larger flow-control windows (``max_data`` 16 MiB, ``max_stream_data`` 8 MiB; the 1 MiB
defaults stall a 1 MB object), a 4 MiB ``SO_RCVBUF``/``SO_SNDBUF`` on the UDP socket (the
208 KB default drops packets under load, FACTS.md), a 1024-deep datagram queue in place of
hypercorn's 10 (it silently drops datagrams past it), and datagrams clamped to the peer's
``max_udp_payload_size``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

_patched = False


def apply_quic_tuning(quic_max_datagram_bytes: int = 1350) -> None:
    """Patch hypercorn's QUIC server (idempotent)."""
    global _patched
    if _patched:
        return
    _patched = True
    import hypercorn.asyncio.run as hrun
    import hypercorn.protocol.quic as hquic
    from hypercorn.asyncio.udp_server import UDPServer

    class TunedQuicProtocol(hquic.QuicProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.quic_config.max_data = 16 * 2**20
            self.quic_config.max_stream_data = 8 * 2**20
            self.quic_config.max_datagram_size = quic_max_datagram_bytes
            self.quic_config.idle_timeout = 30.0

    class TunedUDPServer(UDPServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.protocol_queue = asyncio.Queue(1024)

    class ClampedQuicConnection(hquic.QuicConnection):
        """Never send datagrams larger than the peer's ``max_udp_payload_size``
        (RFC 9000 §18.2); aioquic validates the parameter but does not apply it."""

        def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False
                                        ) -> None:
            super()._parse_transport_parameters(data, from_session_ticket)
            from aioquic.buffer import Buffer
            from aioquic.quic.packet import pull_quic_transport_parameters

            with contextlib.suppress(Exception):
                params = pull_quic_transport_parameters(Buffer(data=data))
                if params.max_udp_payload_size:
                    self._max_datagram_size = min(self._max_datagram_size,
                                                  params.max_udp_payload_size)

    hquic.QuicConnection = ClampedQuicConnection  # type: ignore[misc]
    hquic.QuicProtocol = TunedQuicProtocol  # type: ignore[misc]
    hrun.UDPServer = TunedUDPServer  # type: ignore[misc]
