"""abrstack edge: a caching CDN node (memory + disk tiers) over HTTP/1.1, HTTP/2 and HTTP/3."""

from edge.errors import EdgeError

__all__ = ["EdgeError"]
