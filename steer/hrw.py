"""Rendezvous (highest random weight) hashing with bounded load.

Each (key, node) pair gets a pseudo-random score; a key goes to the node with the highest
score (Thaler and Ravishankar, "Using name-based mappings to increase hit rates", 1998).
Weights use the logarithmic method (Schindelhauer and Schomaker, 2005): node ``n`` of weight
``w`` scores ``-w / ln(u)`` with ``u`` uniform in (0, 1), so that it wins a share ``w / Σw``.
Removing a node moves only the keys it held; adding one takes a fair share from every other.

Bounded load (Mirrokni, Thorup and Zadimoghaddam, "Consistent hashing with bounded loads",
2018, as Vimeo runs it for HLS/DASH): a node is skipped while its load exceeds
``ceil(c × mean load)``; the key then goes to the next node in its own order, so that the
spill-over of a hot node spreads over the others instead of landing on one neighbour.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

_SCALE = float(1 << 64)


def score(key: str, node: str, weight: float = 1.0) -> float:
    """The weighted rendezvous score of ``node`` for ``key`` (higher wins)."""
    digest = hashlib.blake2b(f"{node}\x00{key}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 0.5) / _SCALE      # in (0, 1), never 0 or 1
    return -weight / math.log(u)


def order(key: str, nodes: Sequence[str], weights: Mapping[str, float] | None = None) -> list[str]:
    """``nodes`` from most to least preferred for ``key``; weight 0 puts a node last."""
    w = weights or {}
    return sorted(nodes, key=lambda n: (-score(key, n, w.get(n, 1.0)), n))


def capacity(loads: Mapping[str, float], nodes: Sequence[str], c: float, extra: float = 1.0) -> float:
    """Most load a node may carry: ``c`` times the mean load once ``extra`` is added."""
    if c < 1.0:
        raise ValueError(f"the load bound must be at least 1, not {c}")
    if not nodes:
        return 0.0
    total = sum(loads.get(n, 0.0) for n in nodes) + extra
    return math.ceil(c * total / len(nodes))


def assign(key: str, nodes: Sequence[str], loads: Mapping[str, float] | None = None, *,
           c: float = 1.25, replicas: int = 1,
           weights: Mapping[str, float] | None = None) -> list[str]:
    """The ``replicas`` nodes that serve ``key``: its rendezvous order, skipping nodes whose
    load is at the bound ``ceil(c × mean)``. With no loads this is plain rendezvous hashing.
    When every node is at the bound the least loaded in the key's order are taken, so that a
    key always has a node while any node is left."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, not {replicas}")
    ranked = order(key, nodes, weights)
    if loads is None:
        return ranked[:replicas]
    cap = capacity(loads, ranked, c)
    chosen = [n for n in ranked if loads.get(n, 0.0) < cap][:replicas]
    if len(chosen) < replicas:
        rest = sorted((n for n in ranked if n not in chosen), key=lambda n: loads.get(n, 0.0))
        chosen += rest[:replicas - len(chosen)]
    return chosen
