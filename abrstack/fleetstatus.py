"""``abr fleet status``: ask each service of a running fleet how it is (``/healthz``,
``/metrics``) and report up/down, load, hit ratio, origin offload, titles held and fill
progress, plus the fleet-wide figures (hit ratio over every edge; offload = share of the
bytes the edges served that the origin did not have to send)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from abrstack.fleet import Fleet, Service


def metric_sums(text: str) -> dict[str, float]:
    """Prometheus exposition → each sample name's sum over its labels (and workers), with
    ``name{label=value}`` sums for the labels the status reads."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
            for label in ("cache", "outcome", "route", "source"):
                if label in s.labels:
                    k = f"{s.name}{{{label}={s.labels[label]}}}"
                    out[k] = out.get(k, 0.0) + s.value
    return out


def _hits(m: dict[str, float]) -> tuple[float, float]:
    """(cached answers, cache lookups) from ``edge_requests_total{cache=…}``."""
    hits = looked = 0.0
    for k, v in m.items():
        if k.startswith("edge_requests_total{cache="):
            cache = k[len("edge_requests_total{cache="):-1]
            if cache == "NONE":
                continue
            looked += v
            if cache.split(";")[0] in ("HIT", "STALE", "REVALIDATED"):
                hits += v
    return hits, looked


def _probe(svc: Service) -> dict[str, Any]:
    import httpx

    from abrstack.fleet import _ours

    row: dict[str, Any] = {"name": svc.name, "kind": svc.kind, "url": svc.url,
                           "pid": svc.pid, "running": _ours(svc) if svc.pid else None}
    if svc.kind == "redis":
        from abrstack.redisproc import answers_ping

        port = svc.url.rsplit(":", 1)[-1].split("/")[0]
        row["up"] = port.isdigit() and answers_ping(int(port)) if "127.0.0.1" in svc.url \
            else bool(row["running"] is not False)
        return row
    try:
        row["up"] = httpx.get(svc.url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        row["up"] = False
        return row
    try:
        text = httpx.get(svc.url + "/metrics", timeout=2).text
        m = metric_sums(text)
    except (httpx.HTTPError, ValueError):
        return row
    if svc.kind in ("edge", "shield"):
        hits, looked = _hits(m)
        cached = m.get("edge_object_bytes_total{source=cache}", 0.0)
        served = cached + m.get("edge_object_bytes_total{source=upstream}", 0.0)
        row.update({
            "load": m.get("edge_active_requests", 0.0),
            "requests": looked, "hit_ratio": hits / looked if looked else None,
            "offload": cached / served if served else None, "bytes_served": served,
            "titles": int(m.get("edge_titles_cached", 0.0)),
            "fill_objects": int(m.get("edge_proactive_fill_objects_total{outcome=filled}", 0.0)),
            "fill_titles": int(m.get("edge_proactive_fill_titles_total{outcome=filled}", 0.0)
                               + m.get("edge_proactive_fill_titles_total{outcome=partial}", 0.0)),
        })
    elif svc.kind == "origin":
        media = m.get("abr_origin_response_bytes_total{route=media}")
        row.update({"requests": m.get("abr_origin_requests_total", 0.0),
                    "bytes_served": m.get("abr_origin_response_bytes_total", 0.0)
                    if media is None else media})
    else:  # the steering service: its decisions, and how many edges it sees up
        row.update({"requests": m.get("steer_decisions_total", 0.0),
                    "load": m.get("steer_sessions"),
                    "edges_up": int(m.get("steer_edge_up", 0.0))})
    return row


def status(fleet: Fleet) -> list[dict[str, Any]]:
    """One row per service, then a ``fleet`` row with the fleet-wide figures."""
    rows = [_probe(s) for s in fleet.services()]
    edges = [r for r in rows if r["kind"] == "edge"]
    looked = sum(r.get("requests", 0.0) or 0.0 for r in edges)
    hit = sum((r.get("hit_ratio") or 0.0) * (r.get("requests") or 0.0) for r in edges)
    served = sum(r.get("bytes_served", 0.0) or 0.0 for r in edges)
    origin = next((r for r in rows if r["kind"] == "origin"), {})
    from_origin = origin.get("bytes_served")
    rows.append({
        "name": "fleet", "kind": "fleet", "up": all(r["up"] for r in rows),
        "hit_ratio": hit / looked if looked else None,
        "offload": (1 - from_origin / served) if served and from_origin is not None else None,
        "bytes_served": served, "titles": sum(r.get("titles", 0) for r in edges)})
    return rows


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render(rows: Iterable[dict[str, Any]]) -> str:
    """The status as a table."""
    lines = [f"{'service':<10} {'kind':<7} {'state':<6} {'load':>5} {'requests':>9} "
             f"{'hit':>7} {'offload':>8} {'titles':>6} {'filled':>7}  url"]
    for r in rows:
        state = "up" if r["up"] else "DOWN"
        load = "-" if r.get("load") is None else f"{r['load']:.0f}"
        req = "-" if r.get("requests") is None else f"{r['requests']:.0f}"
        filled = "-" if r.get("fill_titles") is None else f"{r['fill_titles']}"
        titles = "-" if r.get("titles") is None else str(r["titles"])
        lines.append(f"{r['name']:<10} {r['kind']:<7} {state:<6} {load:>5} {req:>9} "
                     f"{_pct(r.get('hit_ratio')):>7} {_pct(r.get('offload')):>8} {titles:>6} "
                     f"{filled:>7}  {r.get('url', '')}")
    return "\n".join(lines)
