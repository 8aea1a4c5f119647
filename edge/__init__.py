"""abrstack edge: a caching CDN node (memory + disk tiers) over HTTP/1.1, HTTP/2 and HTTP/3."""

from abrstack.errors import AbrError


class EdgeError(AbrError):
    """A user-facing edge error (bad option, port in use, unreadable certificate)."""
