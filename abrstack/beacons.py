"""The QoE beacon schema, shared by the players that send beacons, the edge that takes them
(``POST /beacon``) and the aggregator that consumes the ``qoe`` topic (``abr qoe``).

A beacon carries a session's totals so far (not increments): a lost, repeated or reordered
beacon never corrupts the aggregate, the next one carries everything again. ``seq`` orders a
session's beacons; ``final`` marks the last one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from abrstack.bus import Event, MalformedEvent

QOE = "qoe"
"""Topic: players' QoE beacons, appended by the edges."""
BEACON_TYPE = "qoe.beacon"
MAX_BEACON_BYTES = 4096
"""Largest beacon body an edge reads."""
PROTOCOLS = ("h1", "h2", "h3", "unknown")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]*")
_TEXT_FIELDS: dict[str, tuple[int, bool]] = {
    # field: (max characters, required)
    "session_id": (64, True),
    "title": (128, True),
    "abr": (32, True),
    "edge": (128, False),
}
_NUMBER_FIELDS: dict[str, tuple[float, bool, bool]] = {
    # field: (max value, integer, required); all are ≥ 0
    "seq": (1e9, True, True),
    "bitrate_bps": (1e10, False, True),
    "buffer_s": (86_400.0, False, True),
    "stalls": (1e6, True, True),
    "stall_s": (86_400.0, False, True),
    "startup_s": (3_600.0, False, False),
    "switches": (1e6, True, True),
    "errors": (1e6, True, True),
    "played_s": (604_800.0, False, False),
}
FIELDS = frozenset({*_TEXT_FIELDS, *_NUMBER_FIELDS, "protocol", "final", "error", "received_by"})
"""Every field a beacon may have; any other is refused."""
MAX_ERROR_CHARS = 200


def validate_beacon(obj: object) -> dict[str, Any]:
    """A checked copy of a beacon; ``MalformedEvent`` with one sentence saying what is wrong.

    Required: ``session_id``, ``title``, ``abr`` (names), ``protocol`` (h1, h2, h3, unknown),
    ``seq``, ``bitrate_bps``, ``buffer_s``, ``stalls``, ``stall_s``, ``switches``, ``errors``
    (numbers ≥ 0), ``final`` (boolean). Optional: ``edge`` (the edge that served the media),
    ``startup_s`` (null until playback starts), ``played_s``, ``error`` (the last error's text),
    ``received_by`` (set by the edge that took the beacon).
    """
    if not isinstance(obj, dict):
        raise MalformedEvent("a beacon must be a JSON object")
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        raise MalformedEvent(f"unknown beacon field(s): {', '.join(k[:40] for k in unknown[:5])}")
    out: dict[str, Any] = {}
    for key, (limit, required) in _TEXT_FIELDS.items():
        value = obj.get(key)
        if value is None:
            if required:
                raise MalformedEvent(f"'{key}' is missing")
            continue
        if not isinstance(value, str) or not 0 < len(value) <= limit or not _NAME.fullmatch(value):
            raise MalformedEvent(f"'{key}' must be 1-{limit} characters of letters, digits and ._:@+-")
        out[key] = value
    protocol = obj.get("protocol")
    if protocol not in PROTOCOLS:
        raise MalformedEvent(f"'protocol' must be one of {', '.join(PROTOCOLS)}")
    out["protocol"] = protocol
    for key, (top, integer, required) in _NUMBER_FIELDS.items():
        value = obj.get(key)
        if value is None:
            if required:
                raise MalformedEvent(f"'{key}' is missing")
            if key in obj:
                out[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not 0 <= value <= top or (integer and value != int(value)):
            kind = "an integer" if integer else "a number"
            raise MalformedEvent(f"'{key}' must be {kind} from 0 to {top:g}")
        out[key] = int(value) if integer else float(value)
    final = obj.get("final")
    if not isinstance(final, bool):
        raise MalformedEvent("'final' must be true or false")
    out["final"] = final
    for key in ("error", "received_by"):
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise MalformedEvent(f"'{key}' must be a string")
            out[key] = value[:MAX_ERROR_CHARS]
    return out


def beacon_event(beacon: Mapping[str, Any]) -> Event:
    """The ``qoe`` topic's event for a validated beacon."""
    return Event(BEACON_TYPE, dict(beacon))


def beacon_of(event: Event) -> dict[str, Any]:
    """The beacon an event carries (checked again: the topic is open to anything that
    can reach Redis); ``MalformedEvent`` when it is not one."""
    if event.type != BEACON_TYPE:
        raise MalformedEvent(f"not a beacon event: {event.type!r}")
    return validate_beacon(dict(event.data))
