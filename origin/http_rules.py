"""The origin's file validators, on top of the shared HTTP rules of :mod:`abrstack.httpsem`.

Nothing here touches a socket or the file system: the server passes in the request's
method and headers and the file's size and modification time, and gets back what to answer
(:class:`Decision`). Preconditions and ranges (RFC 9110 §13, §14) are decided by
:func:`abrstack.httpsem.decide`, the same table the edge answers from; this module only
adds the validators (§8.8): a strong ETag ``"<mtime_ns hex>-<size hex>"`` (the same form
aiohttp's ``FileResponse`` and nginx use) and ``Last-Modified`` at one-second resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from functools import lru_cache

from abrstack import httpsem
from abrstack.httpsem import (
    NOT_MODIFIED,
    OK,
    PARTIAL_CONTENT,
    PRECONDITION_FAILED,
    RANGE_NOT_SATISFIABLE,
    UNSATISFIABLE,
    ByteRange,
    Decision,
    Unsatisfiable,
    parse_etags,
    parse_http_date,
    parse_range,
)


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

    def representation(self, now_s: float | None) -> httpsem.Representation:
        """The file as the shared rules see it at ``now_s`` (None: long after the mtime).

        RFC 9110 §8.8.2.2: Last-Modified is strong once the Date of the answer is at least
        one second after it (a file changed twice within its second cannot be told apart).
        """
        strong = now_s is None or int(now_s) >= self.last_modified_s + 1
        return httpsem.Representation(self.size_bytes, self.etag, self.last_modified_s, strong)


@lru_cache(maxsize=4096)
def _http_date(epoch_s: int) -> str:
    return formatdate(epoch_s, usegmt=True)


def decide(method: str, headers: Mapping[str, str], facts: FileFacts,
           now_s: float | None = None) -> Decision:
    """Evaluates preconditions and Range for a GET or HEAD of a file (RFC 9110 §13.2.2, §14)."""
    return httpsem.decide(method, headers, facts.representation(now_s))


__all__ = [
    "NOT_MODIFIED", "OK", "PARTIAL_CONTENT", "PRECONDITION_FAILED", "RANGE_NOT_SATISFIABLE",
    "UNSATISFIABLE", "ByteRange", "Decision", "FileFacts", "Unsatisfiable", "decide",
    "parse_etags", "parse_http_date", "parse_range",
]
