"""Pure HTTP rules for serving files: validators, conditional requests and byte ranges.

Nothing here touches a socket or the file system: the server passes in the request's
method and headers and the file's size and modification time, and gets back what to answer
(:class:`Decision`). The rules follow RFC 9110 (HTTP Semantics):

* validators (§8.8): a strong ETag ``"<mtime_ns hex>-<size hex>"`` (the same form aiohttp's
  ``FileResponse`` and nginx use) and ``Last-Modified`` at one-second resolution;
* preconditions, evaluated in the order of §13.2.2: ``If-Match`` → ``If-Unmodified-Since``
  → ``If-None-Match`` → ``If-Modified-Since`` → ``If-Range``;
* ranges (§14): one ``bytes`` range (or several that coalesce into one) gives 206;
  a set with no satisfiable range gives 416 with ``Content-Range: bytes */size``;
  several disjoint ranges are answered with the whole file (200), which §14.2 allows
  ("a server MAY ignore the Range header field") — no ``multipart/byteranges``;
  a syntactically invalid ``Range`` is ignored (200), as nginx does. Range applies to GET only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from typing import Final

OK: Final = 200
PARTIAL_CONTENT: Final = 206
NOT_MODIFIED: Final = 304
PRECONDITION_FAILED: Final = 412
RANGE_NOT_SATISFIABLE: Final = 416


@dataclass(frozen=True)
class FileFacts:
    """What the rules need to know about one file."""

    size_bytes: int
    """Length of the file in bytes."""
    mtime_ns: int
    """Modification time, nanoseconds since the epoch."""

    @property
    def etag(self) -> str:
        """Strong entity tag, quoted (RFC 9110 §8.8.3)."""
        return f'"{self.mtime_ns:x}-{self.size_bytes:x}"'

    @property
    def last_modified_s(self) -> int:
        """Modification time truncated to whole seconds, as Last-Modified carries it."""
        return self.mtime_ns // 1_000_000_000

    @property
    def last_modified(self) -> str:
        """The Last-Modified field value (IMF-fixdate, RFC 9110 §5.6.7)."""
        return _http_date(self.last_modified_s)


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``first..last`` of a file (RFC 9110 §14.1.2)."""

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
    """What to answer to one GET or HEAD of a file."""

    status: int
    """200, 206, 304, 412 or 416."""
    byte_range: ByteRange | None = None
    """The range to send for a 206; None otherwise."""

    @property
    def sends_body(self) -> bool:
        """True when the status carries (part of) the file."""
        return self.status in (OK, PARTIAL_CONTENT)


class Unsatisfiable:
    """Marker: a well-formed byte range set of which no range overlaps the file."""


UNSATISFIABLE: Final = Unsatisfiable()

_ETAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')
_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@lru_cache(maxsize=4096)
def _http_date(epoch_s: int) -> str:
    return formatdate(epoch_s, usegmt=True)


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


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch for an HTTP-date, or None when it is not one (then ignored)."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp())


def parse_range(value: str, size_bytes: int) -> ByteRange | Unsatisfiable | None:
    """Interprets a Range field value against a file of ``size_bytes``.

    Returns the one range to send, :data:`UNSATISFIABLE` (→ 416), or None when the header
    is to be ignored (not ``bytes``, malformed, or several disjoint ranges → 200 whole file).
    Overlapping or adjacent ranges are coalesced (RFC 9110 §14.2 allows it).
    """
    unit, sep, spec_set = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[ByteRange] = []
    specs = spec_set.split(",")
    for spec in specs:
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
                continue
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


def _if_range_holds(value: str, facts: FileFacts) -> bool:
    """RFC 9110 §13.1.5: a strong ETag must match exactly; a date must equal Last-Modified."""
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return not value.startswith("W/") and value == facts.etag
    date_s = parse_http_date(value)
    return date_s is not None and date_s == facts.last_modified_s


def decide(method: str, headers: dict[str, str], facts: FileFacts) -> Decision:
    """Evaluates preconditions and Range for a GET or HEAD (RFC 9110 §13.2.2, §14).

    ``headers`` maps lower-case field names to values (only the ones used here matter).
    """
    if_match = headers.get("if-match")
    if if_match is not None:
        any_tag, tags = parse_etags(if_match)
        # §13.1.1: strong comparison
        if not any_tag and not any(not weak and tag == facts.etag for weak, tag in tags):
            return Decision(PRECONDITION_FAILED)
    else:
        unmodified_since = headers.get("if-unmodified-since")
        if unmodified_since is not None:
            date_s = parse_http_date(unmodified_since)
            if date_s is not None and facts.last_modified_s > date_s:
                return Decision(PRECONDITION_FAILED)

    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        any_tag, tags = parse_etags(if_none_match)
        # §13.1.2: weak comparison
        if any_tag or any(tag == facts.etag for _weak, tag in tags):
            return Decision(NOT_MODIFIED)
    else:
        modified_since = headers.get("if-modified-since")
        if modified_since is not None:
            date_s = parse_http_date(modified_since)
            if date_s is not None and facts.last_modified_s <= date_s:
                return Decision(NOT_MODIFIED)

    range_value = headers.get("range")
    if method != "GET" or range_value is None:
        return Decision(OK)
    if_range = headers.get("if-range")
    if if_range is not None and not _if_range_holds(if_range, facts):
        return Decision(OK)
    parsed = parse_range(range_value, facts.size_bytes)
    if parsed is None:
        return Decision(OK)
    if isinstance(parsed, Unsatisfiable):
        return Decision(RANGE_NOT_SATISFIABLE)
    return Decision(PARTIAL_CONTENT, parsed)
