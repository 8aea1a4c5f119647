"""Pure HTTP semantics shared by the origin and the edge: conditional requests and ranges.

Nothing here touches a socket, a file or the clock: the caller passes the request's method
and (lower-case) header fields and what it knows of the selected representation
(:class:`Representation`), and gets back what to answer (:class:`Decision`). The origin
(:mod:`origin.http_rules`) and the edge (:mod:`edge.app`) both answer from this one table,
so a client sees the same status from either. The rules follow RFC 9110:

* preconditions, evaluated in the order of §13.2.2: ``If-Match`` → ``If-Unmodified-Since``
  → ``If-None-Match`` → ``If-Modified-Since`` → ``If-Range``;
* ``If-Range`` (§13.1.5): a strong ETag must match exactly; a date must equal
  ``Last-Modified`` exactly and only when that date is strong (§8.8.2.2); else 200;
* ranges (§14): one ``bytes`` range (or several that coalesce into one) gives 206;
  a set with no satisfiable range gives 416 with ``Content-Range: bytes */size``;
  several disjoint ranges are answered with the whole object (200), which §14.2 allows
  ("a server MAY ignore the Range header field") — no ``multipart/byteranges``;
  a syntactically invalid ``Range`` is ignored (200), as nginx does. Positions are ASCII
  digits only (§14.1.1 ``1*DIGIT``: no ``_``, no signs, no other scripts' digits).
  Range applies to GET only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

OK: Final = 200
PARTIAL_CONTENT: Final = 206
NOT_MODIFIED: Final = 304
PRECONDITION_FAILED: Final = 412
RANGE_NOT_SATISFIABLE: Final = 416

#: Request fields that :func:`decide` reads.
CONDITIONAL_FIELDS: Final = (
    "if-match", "if-unmodified-since", "if-none-match", "if-modified-since", "if-range", "range",
)


@dataclass(frozen=True)
class Representation:
    """What the rules need to know about the selected representation."""

    size_bytes: int
    """Length of the whole object in bytes."""
    etag: str | None
    """Its entity tag as sent (quoted, maybe ``W/``), or None when it has none."""
    last_modified_s: int | None
    """Last-Modified in whole seconds since the epoch, or None when unknown."""
    last_modified_strong: bool = False
    """True when Last-Modified may serve as a strong validator (RFC 9110 §8.8.2.2: the
    response's Date is at least one second after it)."""


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``first..last`` of an object (RFC 9110 §14.1.2)."""

    first: int
    """Offset of the first byte."""
    last: int
    """Offset of the last byte (inclusive)."""

    @property
    def length_bytes(self) -> int:
        """Number of bytes in the range."""
        return self.last - self.first + 1

    def content_range(self, size_bytes: int) -> str:
        """The Content-Range field value for a 206 (RFC 9110 §14.4)."""
        return f"bytes {self.first}-{self.last}/{size_bytes}"


@dataclass(frozen=True)
class Decision:
    """What to answer to one GET or HEAD."""

    status: int
    """200, 206, 304, 412 or 416."""
    byte_range: ByteRange | None = None
    """The range to send for a 206; None otherwise."""

    @property
    def sends_body(self) -> bool:
        """True when the status carries (part of) the object."""
        return self.status in (OK, PARTIAL_CONTENT)


class Unsatisfiable:
    """Marker: a well-formed byte range set of which no range overlaps the object."""


UNSATISFIABLE: Final = Unsatisfiable()

_ETAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')
# RFC 9110 §14.1.1: first-pos / last-pos / suffix-length are 1*DIGIT (ASCII only).
_RANGE_SPEC = re.compile(r"^[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*$")


def parse_etags(value: str) -> tuple[bool, list[tuple[bool, str]]]:
    """Parses an If-Match / If-None-Match value into (is ``*``, [(weak, opaque-tag)]).

    Malformed members are skipped: a list that yields no tag matches nothing.
    """
    if value.strip() == "*":
        return True, []
    tags: list[tuple[bool, str]] = []
    pos = 0
    while pos < len(value):
        match = _ETAG.match(value, pos)
        if match is None:
            break
        tags.append((match.group(1) is not None, match.group(2)))
        pos = match.end()
    return False, tags


def parse_http_date(value: str | None) -> int | None:
    """Seconds since the epoch for an HTTP-date, or None when it is not one (then ignored)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp())


def parse_range(value: str, size_bytes: int) -> ByteRange | Unsatisfiable | None:
    """Interprets a Range field value against an object of ``size_bytes``.

    Returns the one range to send, :data:`UNSATISFIABLE` (→ 416), or None when the header
    is to be ignored (not ``bytes``, malformed, or several disjoint ranges → 200 whole object).
    Overlapping or adjacent ranges are coalesced (RFC 9110 §14.2 allows it).
    """
    unit, sep, spec_set = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[ByteRange] = []
    for spec in spec_set.split(","):
        match = _RANGE_SPEC.match(spec)
        if match is None:
            return None
        first_text, last_text = match.groups()
        if first_text:  # int-range: first-pos "-" [ last-pos ]
            first = int(first_text)
            last = int(last_text) if last_text else size_bytes - 1
            if last_text and last < first:
                return None  # invalid byte-range-spec: ignore the whole field
            if first >= size_bytes:
                continue  # unsatisfiable member
            ranges.append(ByteRange(first, min(last, size_bytes - 1)))
        elif last_text:  # suffix-range: "-" suffix-length
            suffix = int(last_text)
            if suffix == 0 or size_bytes == 0:
                continue  # §14.1.3: a zero suffix selects no byte
            ranges.append(ByteRange(max(0, size_bytes - suffix), size_bytes - 1))
        else:
            return None  # "-" alone
    if not ranges:
        return UNSATISFIABLE
    ranges.sort(key=lambda r: r.first)
    merged = [ranges[0]]
    for rng in ranges[1:]:
        top = merged[-1]
        if rng.first <= top.last + 1:
            merged[-1] = ByteRange(top.first, max(top.last, rng.last))
        else:
            merged.append(rng)
    return merged[0] if len(merged) == 1 else None


def _if_range_holds(value: str, rep: Representation) -> bool:
    """RFC 9110 §13.1.5: a strong ETag must match exactly; a date must equal a strong
    Last-Modified exactly."""
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return (not value.startswith("W/") and rep.etag is not None
                and not rep.etag.startswith("W/") and value == rep.etag)
    date_s = parse_http_date(value)
    return (date_s is not None and rep.last_modified_strong
            and date_s == rep.last_modified_s)


def decide(method: str, headers: Mapping[str, str], rep: Representation) -> Decision:
    """Evaluates preconditions and Range for a GET or HEAD (RFC 9110 §13.2.2, §14).

    ``headers`` maps lower-case field names to values (only :data:`CONDITIONAL_FIELDS`
    matter).
    """
    lm = rep.last_modified_s
    if_match = headers.get("if-match")
    if if_match is not None:
        any_tag, tags = parse_etags(if_match)
        # §13.1.1: strong comparison
        strong = rep.etag if rep.etag is not None and not rep.etag.startswith("W/") else None
        if not any_tag and not any(not weak and tag == strong for weak, tag in tags):
            return Decision(PRECONDITION_FAILED)
    else:
        date_s = parse_http_date(headers.get("if-unmodified-since"))
        # §13.1.4: false when the representation was modified after the date; ignored
        # when it has no modification date.
        if date_s is not None and lm is not None and lm > date_s:
            return Decision(PRECONDITION_FAILED)

    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        any_tag, tags = parse_etags(if_none_match)
        # §13.1.2: weak comparison
        etag = rep.etag.removeprefix("W/") if rep.etag else None
        if any_tag or (etag is not None and any(tag == etag for _weak, tag in tags)):
            return Decision(NOT_MODIFIED)
    else:
        date_s = parse_http_date(headers.get("if-modified-since"))
        if date_s is not None and lm is not None and lm <= date_s:
            return Decision(NOT_MODIFIED)

    range_value = headers.get("range")
    if method != "GET" or range_value is None:
        return Decision(OK)
    if_range = headers.get("if-range")
    if if_range is not None and not _if_range_holds(if_range, rep):
        return Decision(OK)
    parsed = parse_range(range_value, rep.size_bytes)
    if parsed is None:
        return Decision(OK)
    if isinstance(parsed, Unsatisfiable):
        return Decision(RANGE_NOT_SATISFIABLE)
    return Decision(PARTIAL_CONTENT, parsed)


__all__ = [
    "CONDITIONAL_FIELDS", "NOT_MODIFIED", "OK", "PARTIAL_CONTENT", "PRECONDITION_FAILED",
    "RANGE_NOT_SATISFIABLE", "UNSATISFIABLE", "ByteRange", "Decision", "Representation",
    "Unsatisfiable", "decide", "parse_etags", "parse_http_date", "parse_range",
]
