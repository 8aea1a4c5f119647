"""The fleet spec: YAML → validated dataclasses, bad specs as one sentence, argv asserted literally."""

from __future__ import annotations

from pathlib import Path

import pytest

from abrstack.fleetspec import (
    FleetSpecError,
    edge_argv,
    load_spec,
    origin_argv,
    parse_spec,
    shorthand,
    steer_argv,
    upstreams_of,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "fleet.example.yaml"
URLS = {"origin": "http://origin:8080", "shield": "http://shield:8081",
        "edge-1": "http://edge-1:8081", "edge-2": "http://edge-2:8081"}


def test_example_spec_parses() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.services == ("origin", "shield", "edge-1", "edge-2", "edge-3", "steer")
    assert spec.shield is not None and spec.shield.tier == "shield"
    assert spec.shield.cache_size == "4GiB"
    assert spec.fill.segments == 3 and spec.steering.policy == "hrw"
    assert spec.redis is None and spec.shield_fallback


def test_shorthand_is_a_spec() -> None:
    spec = shorthand(edges=2, shield=True)
    assert spec.edge_names() == ("edge-1", "edge-2")
    assert spec.shield is not None
    assert shorthand(edges=1).shield is None


def test_edge_argv_goes_to_the_shield_then_the_origin() -> None:
    spec = shorthand(edges=2, shield=True)
    argv = edge_argv(spec, spec.edges[0], urls=URLS, cache_dir="/cache", redis_url="redis://r:6379/0",
                     port=8443, http_port=8081)
    assert argv == ["abr", "edge", "--origin", "http://shield:8081", "--origin", "http://origin:8080",
                    "--host", "127.0.0.1", "--port", "8443", "--http-port", "8081",
                    "--cache-dir", "/cache", "--cache-size", "2GiB", "--memory-size", "256MiB",
                    "--workers", "1", "--prefetch", "2", "--via-name", "edge-1",
                    "--access-log", "off", "--redis", "redis://r:6379/0",
                    "--fleet-edges", "edge-1,edge-2", "--fill-segments", "3",
                    "--fill-replicas", "1"]
    assert spec.shield is not None
    shield = edge_argv(spec, spec.shield, urls=URLS, cache_dir="/c")
    assert shield[2:4] == ["--origin", "http://origin:8080"] and "--fleet-edges" not in shield
    assert "--redis" not in shield


def test_no_fallback_and_no_shield() -> None:
    spec = parse_spec({"shield": {"fallback_to_origin": False}, "edges": {"count": 2}})
    assert upstreams_of(spec, spec.edges[1], URLS) == ["http://shield:8081"]
    flat = parse_spec({"edges": {"count": 2}})
    assert upstreams_of(flat, flat.edges[0], URLS) == ["http://origin:8080"]
    ext = parse_spec({"origin": {"url": "https://o.example"}, "edges": {"count": 1}})
    assert upstreams_of(ext, ext.edges[0], {}) == ["https://o.example"]


def test_origin_and_steer_argv() -> None:
    spec = parse_spec({"origin": {"port": 8080}, "edges": {"names": ["edge-1", "edge-2"]},
                       "steering": {"port": 8090, "ttl_s": 5}})
    assert origin_argv(spec, media="/media", program=["python", "-m", "abrstack"]) == [
        "python", "-m", "abrstack", "origin", "--media", "/media", "--host", "127.0.0.1",
        "--port", "8080", "--workers", "1", "--access-log", "off"]
    assert steer_argv(spec, urls=URLS, redis_url=None) == [
        "abr", "steer", "--host", "127.0.0.1", "--port", "8090", "--policy", "hrw",
        "--load-bound", "1.25", "--replicas", "1", "--ttl", "5", "--health-timeout", "3",
        "--edge", "edge-1=http://edge-1:8081", "--edge", "edge-2=http://edge-2:8081"]


def test_fixed_ports_count_up() -> None:
    spec = parse_spec({"edges": {"count": 3, "base_port": 9443, "base_http_port": 9081}})
    assert [(e.port, e.http_port) for e in spec.edges] == [(9443, 9081), (9444, 9082), (9445, 9083)]


@pytest.mark.parametrize(("doc", "words"), [
    ([1, 2], "a fleet spec is a mapping"),
    ({"edgez": {}}, "unknown key 'edgez'"),
    ({"edges": {"count": 0}}, "edges.count must be a whole number from 1 to 64"),
    ({"edges": {"count": 65}}, "from 1 to 64"),
    ({"edges": {"count": "3"}}, "edges.count must be a whole number"),
    ({"edges": {"cache_size": "lots"}}, "is not a size"),
    ({"edges": {"names": ["Edge_1"]}}, "RFC 1123 label"),
    ({"edges": {"names": ["a", "a"]}}, "two services are named 'a'"),
    ({"edges": {"names": ["origin"]}}, "two services are named 'origin'"),
    ({"steering": {"policy": "dns"}}, "steering.policy 'dns' is unknown"),
    ({"steering": {"load_bound": 0.5}}, "steering.load_bound must be a number from 1 to 10"),
    ({"shield": "yes"}, "shield must be true, false or a mapping"),
    ({"redis": "http://x"}, "is not a redis/rediss/unix URL"),
    ({"origin": {"port": 8080}, "steering": {"port": 8080}}, "port 8080 is given to both"),
    ({"edges": {"port": 1}}, "give edges.base_port"),
    ({"fill": {"segments": -1}}, "fill.segments must be a whole number from 0 to 100"),
    ({"edges": {"count": 2}, "fill": {"replicas": 3}}, "fill.replicas must be a whole number from 1 to 2"),
])
def test_bad_specs_are_one_sentence(doc: object, words: str) -> None:
    with pytest.raises(FleetSpecError) as err:
        parse_spec(doc)
    msg = str(err.value)
    assert words in msg and "\n" not in msg and msg.endswith(".")


def test_bad_yaml_file(tmp_path: Path) -> None:
    bad = tmp_path / "f.yaml"
    bad.write_text("edges: [unclosed\n")
    with pytest.raises(FleetSpecError, match=r"is not valid YAML at line \d"):
        load_spec(bad)
    with pytest.raises(FleetSpecError, match="cannot read the fleet spec"):
        load_spec(tmp_path / "missing.yaml")
    bad.write_text("edges:\n  count: 2\n  colour: blue\n")
    with pytest.raises(FleetSpecError, match=r"f\.yaml: edges: unknown key 'colour'"):
        load_spec(bad)
