"""Errors the player and simulator report to a user as one sentence."""

from __future__ import annotations

from abrstack.errors import AbrError


class PlayerError(AbrError):
    """Bad input to the player or simulator: a malformed trace or video, an unknown name."""
