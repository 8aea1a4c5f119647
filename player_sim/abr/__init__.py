"""ABR algorithms by name (importing this package registers them all)."""

from player_sim.abr import bb, bola, dynamic, marathon, mpc, optimal, throughput  # noqa: F401  (registration)
from player_sim.abr.base import (
    Abr,
    AbrContext,
    Decision,
    Download,
    PlayerState,
    Progress,
    is_online,
    make,
    names,
    parse_names,
    reference,
)

__all__ = [
    "Abr",
    "AbrContext",
    "Decision",
    "Download",
    "PlayerState",
    "Progress",
    "is_online",
    "make",
    "names",
    "parse_names",
    "reference",
]
