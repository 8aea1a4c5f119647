"""Errors the origin reports to its user (one sentence each)."""

from __future__ import annotations

from abrstack.errors import AbrError


class OriginError(AbrError):
    """Base of every origin error: bad options, a missing media folder, a busy port."""
