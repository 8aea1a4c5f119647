"""Pure rules for the /media URL space: which paths exist, their media types and caching.

A request path under ``/media/{name}/`` is accepted only when every segment is a plain,
visible file or folder name; the file system check that the resolved file really lies in
the title folder is done by :mod:`origin.files`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

TITLE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Names that are titles (contracts.md); anything else, e.g. ``.tmp-*``, is not served."""

SEGMENT_MAX_AGE_S: Final = 31_536_000
"""Init and media segments never change once published: cached for a year, immutable."""
MANIFEST_MAX_AGE_S: Final = 2
"""Manifests and title.json: a title can be replaced (re-encoded) under the same name, so
caches may reuse them for 2 s only (and then revalidate with the ETag)."""

IMMUTABLE: Final = f"public, max-age={SEGMENT_MAX_AGE_S}, immutable"  # RFC 8246
SHORT: Final = f"public, max-age={MANIFEST_MAX_AGE_S}"

# Segments in a rendition folder whose id starts with "audio" are audio (contracts: rid
# "audio"; the folder is ``<version>/<rid>/``).
_TYPES: Final[dict[str, tuple[str, str]]] = {
    # extension: (media type, cache policy)
    ".m3u8": ("application/vnd.apple.mpegurl", SHORT),  # RFC 8216 §4
    ".mpd": ("application/dash+xml", SHORT),  # ISO/IEC 23009-1 Annex C
    ".json": ("application/json", SHORT),
    ".mp4": ("video/mp4", IMMUTABLE),  # RFC 4337
    ".m4s": ("video/mp4", IMMUTABLE),
    ".m4v": ("video/mp4", IMMUTABLE),
    ".m4a": ("audio/mp4", IMMUTABLE),
    ".vtt": ("text/vtt", SHORT),
    ".jpg": ("image/jpeg", SHORT),
    ".png": ("image/png", SHORT),
}


class BadPath(ValueError):
    """The path is malformed (e.g. a NUL byte or a dot segment): answered with 400."""


@dataclass(frozen=True)
class MediaKind:
    """How one served file is labelled and cached."""

    content_type: str
    """The Content-Type field value."""
    cache_control: str
    """The Cache-Control field value."""


def is_title_name(name: str) -> bool:
    """True when ``name`` may be a title (visible, no separators, at most 128 characters)."""
    return TITLE_NAME.fullmatch(name) is not None


def split_media_path(path: str) -> tuple[str, ...]:
    """Splits the part after ``/media/{name}/`` into segments, or raises.

    Raises :class:`BadPath` for NUL bytes, backslashes, empty segments (``//``, an absolute
    path) and dot segments (``.``, ``..``, also when they arrived percent-encoded), and
    :class:`LookupError` for hidden segments (names starting with a dot): those are not
    served but are not malformed either (404).
    """
    if not path:
        raise LookupError("no file named")
    if "\x00" in path or "\\" in path:
        raise BadPath("path contains a NUL byte or a backslash")
    segments = tuple(path.split("/"))
    for segment in segments:
        if segment in ("", ".", ".."):
            raise BadPath("path contains an empty or dot segment")
    for segment in segments:
        if segment.startswith("."):
            raise LookupError("hidden files are not served")
    return segments


def media_kind(segments: tuple[str, ...]) -> MediaKind | None:
    """The media type and cache policy of a file, or None for files that are not served."""
    name = segments[-1]
    dot = name.rfind(".")
    if dot <= 0:
        return None
    found = _TYPES.get(name[dot:].lower())
    if found is None:
        return None
    content_type, cache_control = found
    if content_type == "video/mp4" and len(segments) > 1 and segments[-2].startswith("audio"):
        content_type = "audio/mp4"
    return MediaKind(content_type, cache_control)
