"""The QoE aggregator (`abr qoe`): consumes the `qoe` topic's beacons in a consumer group and
shows live per-title, per-edge, per-ABR (and per-protocol) QoE on Prometheus `/metrics`, a JSON
API and a dashboard page that updates itself."""

from __future__ import annotations

from abrstack.errors import AbrError


class QoeError(AbrError):
    """The aggregator cannot run (bad option, port taken)."""
