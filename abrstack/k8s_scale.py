"""Autoscaling for the Kubernetes fleet: the capacities the targets come from, the edges'
HorizontalPodAutoscaler (CPU + bytes/s per pod through the Prometheus Adapter), the encoder
workers' KEDA ScaledObject (the jobs stream), and the HPA's own rule as a pure function that
``bench/autoscale.py`` replays (Kubernetes docs, "Horizontal Pod Autoscaling", algorithm
details: desired = ceil(current × metric / target), skipped within the tolerance; the
scale-down stabilisation window takes the highest recommendation of the window).

The figures (README, "Running on Kubernetes", has the arithmetic):

- ``bench/load.py``: one edge process (1 worker) served 150 concurrent top-rung players over
  HTTP/3 with no edge-caused stall (200 over HTTP/1.1, the largest step tried; HTTP/2 was
  limited by the players' client), the HTTP/3 run using 11-12 edge CPU-s over a 20-s title.
  The capacity per pod is the lowest of those: 150 players × the top rung of the 720p sample
  (2,800 kbit/s video + 128 kbit/s audio) = 54.9 MB/s.
- ``bench/encode.py``: 22.9 CPU-s for 10 s of 1080p with four audio tracks: 2.29 CPU-s per
  second of source; a worker runs one job at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PLAYERS_PER_POD = 150
"""bench/load.py: concurrent top-rung players one edge pod served without an edge-caused stall
(the lowest of its h1 and h3 figures; README, "Playing over real HTTP", benchmarks)."""
TOP_RUNG_BPS = 2_800_000 + 128_000
"""The load test's top rung: 720p video at 2,800 kbit/s plus 128 kbit/s AAC."""
CAPACITY_BYTES_PER_S = PLAYERS_PER_POD * TOP_RUNG_BPS // 8
"""Measured capacity of one edge pod in response body bytes per second (54.9 MB/s)."""
TARGET_FRACTION = 0.6
"""The HPA's target as a share of the capacity: room for a minute of growth while new pods
start (bench/autoscale.py checks that no minute goes above the capacity)."""
TARGET_BYTES_PER_S = int(CAPACITY_BYTES_PER_S * TARGET_FRACTION)
"""``edge_response_body_bytes_per_second`` target per pod (32.9 MB/s)."""
EDGE_CPU_M = 1000
"""CPU request of an edge pod (millicores): the h3 run used 0.55-0.6 cores for 150 players."""
CPU_TARGET_PERCENT = 70
"""CPU utilisation target of the edges' HPA (of the request)."""
ENCODE_CPU_S_PER_SOURCE_S = 2.29
"""bench/encode.py: CPU-seconds per second of 1080p source (4 rungs, 4 audio tracks)."""
ENCODER_CPU_M = 2000
"""CPU request of an encoder worker: one job at a time, ffmpeg's threads on two cores."""

METRIC = "edge_response_body_bytes_per_second"
"""The per-pod custom metric the Prometheus Adapter derives from the edge's counter."""
TOLERANCE = 0.1
"""kube-controller-manager's --horizontal-pod-autoscaler-tolerance (default 0.1)."""


@dataclass(frozen=True)
class Behavior:
    """The HPA ``behavior`` the edges get (and the rehearsal replays)."""

    up_window_s: int = 0
    """Scale-up stabilisation: react at once."""
    up_percent: int = 100
    """Scale up by at most this share of the current pods per period ..."""
    up_pods: int = 4
    """... or this many pods, whichever is more (selectPolicy Max)."""
    up_period_s: int = 60
    """Period of the scale-up policies."""
    down_window_s: int = 300
    """Scale-down stabilisation: the highest recommendation of the last 5 minutes (longer
    windows lag a falling load and then shed one pod per sync: bench/autoscale.py)."""
    down_percent: int = 25
    """Scale down by at most this share of the pods per period."""
    down_pods: int = 1
    """... or this many pods, whichever is more (else 25% of 3 pods rounds to none)."""
    down_period_s: int = 300
    """Period of the scale-down policies."""

    def to_k8s(self) -> dict[str, Any]:
        return {
            "scaleUp": {"stabilizationWindowSeconds": self.up_window_s, "selectPolicy": "Max",
                        "policies": [
                            {"type": "Percent", "value": self.up_percent,
                             "periodSeconds": self.up_period_s},
                            {"type": "Pods", "value": self.up_pods,
                             "periodSeconds": self.up_period_s}]},
            "scaleDown": {"stabilizationWindowSeconds": self.down_window_s,
                          "selectPolicy": "Max",
                          "policies": [{"type": "Percent", "value": self.down_percent,
                                        "periodSeconds": self.down_period_s},
                                       {"type": "Pods", "value": self.down_pods,
                                        "periodSeconds": self.down_period_s}]},
        }


BEHAVIOR = Behavior()


def desired_replicas(current: int, metric: float, target: float,
                     tolerance: float = TOLERANCE) -> int:
    """The HPA's recommendation for one metric: ceil(current × metric / target), or
    ``current`` when the ratio is within the tolerance."""
    if current <= 0:
        return current
    ratio = metric / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return math.ceil(current * ratio)


def step(current: int, recommendation: int, history: Sequence[tuple[float, int]], now_s: float,
         changes: Sequence[tuple[float, int]], lo: int, hi: int,
         b: Behavior = BEHAVIOR) -> int:
    """One HPA sync: the stabilised recommendation limited by the behavior's rate policies.

    ``history``: (time, raw recommendation) of earlier syncs; ``changes``: (time, replica
    change) of earlier scale events. Scale-down uses the highest recommendation in the
    down window; scale-up the lowest in the up window (Kubernetes' stabilisation)."""
    up_recs = [r for t, r in history if now_s - t < b.up_window_s] + [recommendation]
    down_recs = [r for t, r in history if now_s - t < b.down_window_s] + [recommendation]
    want = current
    if recommendation > current:
        want = max(current, min(up_recs))
        added = sum(d for t, d in changes if d > 0 and now_s - t < b.up_period_s)
        base = current - added
        limit = max(base * (1 + b.up_percent / 100), base + b.up_pods)
        want = min(want, math.floor(limit))
    elif recommendation < current:
        want = min(current, max(down_recs))
        removed = -sum(d for t, d in changes if d < 0 and now_s - t < b.down_period_s)
        base = current + removed
        limit = min(math.ceil(base * (1 - b.down_percent / 100)), base - b.down_pods)
        want = max(want, limit)
    return max(lo, min(hi, want))


# ------------------------------------------------------------------ manifests

def edge_hpa(name: str, namespace: str, labels: dict[str, str], min_replicas: int,
             max_replicas: int) -> dict[str, Any]:
    """autoscaling/v2 HPA of one edge Deployment: CPU and bytes/s per pod."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "metrics": [
                {"type": "Resource", "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT}}},
                {"type": "Pods", "pods": {
                    "metric": {"name": METRIC},
                    "target": {"type": "AverageValue",
                               "averageValue": str(TARGET_BYTES_PER_S)}}},
            ],
            "behavior": BEHAVIOR.to_k8s(),
        },
    }


def adapter_rules() -> dict[str, Any]:
    """Prometheus Adapter rule: the per-pod rate of the edge's body-bytes counter."""
    return {"rules": [{
        "seriesQuery": 'edge_response_body_bytes_total{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"},
                                    "pod": {"resource": "pod"}}},
        "name": {"matches": "^(.*)_total$", "as": "${1}_per_second"},
        "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)",
    }]}


def encoder_scaledobject(name: str, namespace: str, labels: dict[str, str], redis_host: str,
                         redis_db: int, max_replicas: int) -> dict[str, Any]:
    """KEDA ScaledObject: encoder workers follow the jobs stream of the ``encoders`` group.

    Two triggers (the HPA takes the larger): the group's lag (queued, not yet taken; one
    worker per job, since a worker runs one at a time) and its pending entries (jobs being
    run: never scale below the workers busy encoding)."""
    from encoder.jobqueue import GROUP, JOBS

    common = {"address": redis_host, "stream": JOBS, "consumerGroup": GROUP,
              "databaseIndex": str(redis_db)}
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": 0, "maxReplicaCount": max_replicas,
            "pollingInterval": 15, "cooldownPeriod": 600,
            "triggers": [
                {"type": "redis-streams", "name": "queued",
                 "metadata": {**common, "lagCount": "1", "activationLagCount": "0"}},
                {"type": "redis-streams", "name": "running",
                 "metadata": {**common, "pendingEntriesCount": "1"}},
            ],
        },
    }
