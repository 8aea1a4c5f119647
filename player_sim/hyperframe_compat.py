"""What the player's HTTP/2 client changes inside hyperframe: one function, for one version.

h2 logs every received frame with ``logger.trace("Received frame: %s", repr(frame))``; the
``repr`` is built even when nothing logs, and hyperframe's ``_raw_data_repr`` hexlifies a
DATA frame's whole payload before it keeps the first 20 hex digits. On a 1 MiB segment that
is 2 MiB of hex text thrown away, about a fifth of the client's CPU per byte at 256 KiB
frames (profiled; upstream hyperframe 6.1.0, h2 4.4.1). :func:`apply` makes it hexlify
only the bytes it shows; the text is the same. It is written for hyperframe
:data:`HYPERFRAME_VERSION` exactly and refuses any other with one sentence; nothing
happens at import: the HTTP/2 client calls :func:`apply` when it is made.
"""

from __future__ import annotations

from collections.abc import Callable

from player_sim.errors import PlayerError

HYPERFRAME_VERSION = "6.1.0"
"""The hyperframe release this module was written for and tested against."""
_SHOWN_BYTES = 11
"""Bytes whose hex the repr can show: 20 digits and the "..." that marks more."""
_applied = False


def check(version: str | None = None) -> None:
    """Refuse any hyperframe but :data:`HYPERFRAME_VERSION` (default: the installed one)."""
    if version is None:
        import hyperframe

        version = hyperframe.__version__
    if version != HYPERFRAME_VERSION:
        raise PlayerError(
            f"the HTTP/2 player needs hyperframe {HYPERFRAME_VERSION} (it changes one "
            f"internal function of that version; player_sim/hyperframe_compat.py), but "
            f"{version} is installed: pip install hyperframe=={HYPERFRAME_VERSION}.")


def apply() -> None:
    """Make DATA frame reprs hexlify only what they show (idempotent)."""
    global _applied
    if _applied:
        return
    check()
    import hyperframe.frame as frame

    whole: Callable[[bytes | None], str] = frame._raw_data_repr

    def shown_only(data: bytes | None) -> str:
        return whole(data[:_SHOWN_BYTES] if data else data)

    frame._raw_data_repr = shown_only
    _applied = True
