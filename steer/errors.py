"""The steering service's errors."""

from __future__ import annotations

from abrstack.errors import AbrError


class SteerError(AbrError):
    """Bad steering input (a manifest, a query, an option); the message says which."""
