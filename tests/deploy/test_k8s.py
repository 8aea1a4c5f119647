"""`abr fleet k8s`: the manifests validate offline (two Kubernetes minor versions, strict; the
KEDA and Dask CRDs kept in deploy/kubernetes/crds), and they carry the local fleet's services,
ports and arguments — built by the same fleetspec functions `abr fleet up` calls."""

from __future__ import annotations

import copy
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from abrstack.cli import build_parser
from abrstack.fleet import PROGRAM
from abrstack.fleetspec import edge_argv, load_spec, origin_argv, parse_spec, shorthand, steer_argv
from abrstack.k8s import EDGE_DRAIN_S, Options, render
from abrstack.k8s_cli import write_folder

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "deploy" / "kubernetes" / "crds"
VERSIONS = ("1.35.0", "1.37.0")
"""Two supported minor versions: the oldest and the newest kubernetes-validate ships."""
EXAMPLE = ROOT / "deploy" / "fleet.example.yaml"


def _crd_schema(file: str, version: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((CRDS / file).read_text()) if d]
    (crd,) = docs
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
    # The API server gives every resource these, whether the CRD lists them or not.
    schema["properties"].setdefault("apiVersion", {"type": "string", "enum": [
        f"{crd['spec']['group']}/{version}"]})
    schema["properties"].setdefault("kind", {"type": "string"})
    schema["properties"].setdefault("metadata", {"type": "object"})
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "spec"})
    return _strict(schema)


def _strict(s: Any) -> Any:
    """Unknown fields are errors (as `kubectl apply --validate=strict`), except where the
    schema says x-kubernetes-preserve-unknown-fields."""
    if isinstance(s, dict):
        if s.get("x-kubernetes-int-or-string"):
            s.pop("type", None)
            s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if "properties" in s and "additionalProperties" not in s \
                and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
        for v in s.values():
            _strict(v)
    elif isinstance(s, list):
        for v in s:
            _strict(v)
    return s


CRD_FILES = {"ScaledObject": ("keda.sh_scaledobjects.yaml", "v1alpha1"),
             "DaskCluster": ("kubernetes.dask.org_daskclusters.yaml", "v1")}


def _validate(objs: list[dict[str, Any]]) -> set[str]:
    kinds = set()
    for o in objs:
        kinds.add(o["kind"])
        if o["kind"] in CRD_FILES:
            schema = _crd_schema(*CRD_FILES[o["kind"]])
            jsonschema.validate({k: v for k, v in o.items()}, schema)
            continue
        for v in VERSIONS:
            kubernetes_validate.validate(o, v, strict=True)
    return kinds


def _containers(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                out[o["metadata"]["name"]] = c
    return out


def test_every_object_validates_against_both_versions_and_the_crds() -> None:
    spec = load_spec(EXAMPLE)
    kinds = _validate(render(spec))
    assert {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "ScaledObject",
            "PodDisruptionBudget", "NetworkPolicy", "PersistentVolumeClaim"} <= kinds
    kinds = _validate(render(shorthand(edges=1), Options(dask_cluster_cr=True)))
    assert "DaskCluster" in kinds


def test_a_broken_object_fails_validation() -> None:
    """The checks can fail: an unknown field, a wrong type, a bad CRD field."""
    objs = render(shorthand(edges=1))
    dep = next(o for o in objs if o["kind"] == "Deployment")
    bad = copy.deepcopy(dep)
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)
    so = copy.deepcopy(next(o for o in objs if o["kind"] == "ScaledObject"))
    so["spec"]["maxReplicaCount"] = "eight"
    with pytest.raises(jsonschema.ValidationError):
        _validate([so])
    so["spec"]["maxReplicaCount"] = 8
    so["spec"]["cooldown"] = 5
    with pytest.raises(jsonschema.ValidationError):
        _validate([so])


def _pairs(argv: list[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for a in argv:
        if a.startswith("--"):
            out.append((a, None))
        elif out and out[-1][1] is None:
            out[-1] = (out[-1][0], a)
    return out


# Flags whose values say where things are (ports, addresses, folders, URLs): locally free
# ports on 127.0.0.1 and a state folder, in the cluster fixed ports and service names.
LOCATION = {"--host", "--port", "--http-port", "--cache-dir", "--access-log", "--origin",
            "--redis", "--media", "--edge"}
CLUSTER_ONLY = {"--purge-token-file", "--public-url"}


def _same_invocation(local: list[str], cluster: list[str]) -> None:
    assert cluster[1] == local[len(PROGRAM)], (local, cluster)  # the same abr subcommand
    lp, cp = _pairs(local[len(PROGRAM):]), _pairs(cluster[1:])
    cp = [p for p in cp if p[0] not in CLUSTER_ONLY]
    assert [f for f, _ in lp] == [f for f, _ in cp]
    for (flag, lv), (_, cv) in zip(lp, cp, strict=True):
        if flag not in LOCATION:
            assert lv == cv, (flag, lv, cv)


def _local(spec: Any) -> dict[str, list[str]]:
    """The argv of every service as `abr fleet up` builds it (abrstack/fleet.py:up)."""
    urls = {spec.origin.name: "http://127.0.0.1:40001"}
    out = {spec.origin.name: origin_argv(spec, media=Path("/x/media"), host="127.0.0.1",
                                         program=PROGRAM)}
    if spec.shield is not None:
        out[spec.shield.name] = edge_argv(spec, spec.shield, urls=urls, cache_dir="/s/cache/shield",
                                          redis_url=None, access_log="/s/logs/a.log",
                                          program=PROGRAM)
        urls[spec.shield.name] = "http://127.0.0.1:40002"
    for i, e in enumerate(spec.edges):
        out[e.name] = edge_argv(spec, e, urls=urls, cache_dir=f"/s/cache/{e.name}",
                                redis_url="redis://127.0.0.1:40000/0",
                                access_log="/s/logs/b.log", program=PROGRAM)
        urls[e.name] = f"http://127.0.0.1:{40010 + i}"
    if spec.steering.enabled:
        out[spec.steering.name] = steer_argv(spec, urls=urls,
                                             redis_url="redis://127.0.0.1:40000/0",
                                             program=PROGRAM)
    return out


@pytest.mark.parametrize("doc", [
    None,  # deploy/fleet.example.yaml
    {"edges": {"names": ["paris", "tokyo"], "cache_size": "3GiB", "memory_size": "300MiB",
               "workers": 2, "prefetch": 5},
     "shield": {"cache_size": "9GiB", "fallback_to_origin": False},
     "steering": {"policy": "random", "load_bound": 1.5, "replicas": 2, "ttl_s": 30},
     "fill": {"segments": 4, "replicas": 2}, "origin": {"workers": 3}},
])
def test_the_manifests_carry_the_local_fleet(doc: dict[str, Any] | None) -> None:
    spec = load_spec(EXAMPLE) if doc is None else parse_spec(doc)
    objs = render(spec)
    containers = _containers(objs)
    local = _local(spec)
    assert set(local) <= set(containers)
    for name, argv in local.items():
        c = containers[name]
        _same_invocation(argv, [*c["command"], *c["args"]])
    services = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    for name in local:
        assert name in services, name
    # Every container port is a port of its Service; an edge's TLS port is TCP and UDP.
    for name in local:
        ports = {(p["containerPort"], p.get("protocol", "TCP")) for p in containers[name]["ports"]}
        sports = {(p["port"], p.get("protocol", "TCP")) for p in services[name]["spec"]["ports"]}
        assert ports == sports, name
    for e in spec.edges:
        protos = {(p["port"], p["protocol"]) for p in services[e.name]["spec"]["ports"]}
        assert {(8443, "TCP"), (8443, "UDP"), (8081, "TCP")} <= protos
        assert services[e.name]["spec"]["type"] == "LoadBalancer"


def test_every_abr_container_parses_with_the_real_command_line() -> None:
    """Each container's arguments are a valid `abr` invocation (the real parser)."""
    parser = build_parser()
    objs = render(load_spec(EXAMPLE), Options(dask_cluster_cr=False))
    n = 0
    for name, c in _containers(objs).items():
        if c["command"] != ["abr"]:
            continue
        n += 1
        args = [a.replace("$(POD_NAME)", "pod-1") for a in c["args"]]
        ns = parser.parse_args(args)
        assert callable(ns.handler), name
    assert n >= 8  # origin, shield, 3 edges, steer, encoder, worker, qoe


def test_every_pod_is_probed_bounded_and_unprivileged() -> None:
    objs = render(load_spec(EXAMPLE))
    for o in objs:
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = o["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            r = c["resources"]
            assert {"cpu", "memory"} <= set(r["requests"]) and {"cpu", "memory"} <= set(r["limits"])
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            if o["metadata"]["name"] != "encoder-worker":  # a queue consumer: no HTTP
                probe = c["readinessProbe"]
                assert probe == c["livenessProbe"] | {"periodSeconds": 5, "failureThreshold": 2} \
                    or "exec" in probe or probe["httpGet"]["path"] in ("/healthz", "/health")
        tier = o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        if tier in ("edge", "shield"):
            (c,) = pod["containers"]
            assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
            pre = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
            assert pod["terminationGracePeriodSeconds"] > pre + EDGE_DRAIN_S
            assert "--purge-token-file" in c["args"]
    pdbs = {o["metadata"]["name"] for o in objs if o["kind"] == "PodDisruptionBudget"}
    assert {"edge-1", "edge-2", "edge-3", "shield"} <= pdbs
    assert not any("token" in a for o in objs if o["kind"] == "Deployment"
                   for c in o["spec"]["template"]["spec"]["containers"] for a in c["args"]
                   if not a.startswith("--purge-token-file") and "/purge/" not in a)


def test_network_policies() -> None:
    objs = render(load_spec(EXAMPLE))
    pol = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "NetworkPolicy"}
    assert pol["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    open_to_all = {n for n, p in pol.items() if any("from" not in r for r in p.get("ingress", []))}
    assert open_to_all == {"edges-from-players", "steer"}  # only edges and router face players
    origin_from = [f["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                   for f in pol["origin"]["ingress"][0]["from"]]
    assert origin_from == ["shield", "edge"]  # the example spec lets edges fall back
    strict = render(parse_spec({"shield": {"fallback_to_origin": False}}))
    p = next(o for o in strict if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "origin")
    assert [f["podSelector"]["matchLabels"] for f in p["spec"]["ingress"][0]["from"]] == [
        {"app.kubernetes.io/component": "shield"}]
    redis_from = pol["redis"]["ingress"][0]["from"]
    assert redis_from == [{"podSelector": {"matchLabels": {"abrstack/redis-client": "true"}}}]
    clients = {o["metadata"]["name"] for o in objs if o["kind"] == "Deployment"
               and o["spec"]["template"]["metadata"]["labels"].get("abrstack/redis-client")}
    assert clients == {"edge-1", "edge-2", "edge-3", "steer", "encoder", "encoder-worker", "qoe"}


def test_scaledobject_uses_the_workers_stream_and_group() -> None:
    from encoder.jobqueue import GROUP, JOBS

    so = next(o for o in render(shorthand()) if o["kind"] == "ScaledObject")
    for t in so["spec"]["triggers"]:
        assert t["type"] == "redis-streams"
        assert (t["metadata"]["stream"], t["metadata"]["consumerGroup"]) == (JOBS, GROUP)
        assert t["metadata"]["address"] == "redis:6379"


def test_cli_stdout_and_kustomize_folder(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "abrstack", "fleet", "k8s", "--edges", "3",
                          "--shield", "--image", "reg.example/abrstack:1.2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    _validate(objs)
    assert [o["kind"] for o in objs].count("HorizontalPodAutoscaler") == 3
    assert any(o["kind"] == "Secret" for o in objs)
    assert all(c["image"] == "reg.example/abrstack:1.2" for c in _containers(objs).values()
               if c["command"] in (["abr"], ["dask"]))
    bad = subprocess.run([sys.executable, "-m", "abrstack", "fleet", "k8s", "--image", "Not An Image"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "--image" in bad.stderr

    folder = tmp_path / "deploy" / "kubernetes" / "demo"
    files = write_folder(render(shorthand(edges=2, shield=True)), folder, "abrstack")
    kust = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kust["resources"] == files[:-1]
    assert all((folder / f).is_file() for f in files)
    assert stat.S_IMODE((folder / "purge-token").stat().st_mode) == 0o600
    assert (folder / ".gitignore").read_text() == "purge-token\n"
    token = (folder / "purge-token").read_text()
    write_folder(render(shorthand(edges=2, shield=True)), folder, "abrstack")
    assert (folder / "purge-token").read_text() == token  # kept across renders
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (kustomize build not checked)")
    built = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True,
                           timeout=60)
    assert built.returncode == 0, built.stderr
    objs = [d for d in yaml.safe_load_all(built.stdout) if d]
    secret = next(o for o in objs if o["kind"] == "Secret")
    name = secret["metadata"]["name"]
    assert name.startswith("abr-purge-token-")  # the generator's hash suffix ...
    edge = next(o for o in objs if o["metadata"]["name"] == "edge-1" and o["kind"] == "Deployment")
    vols = {v["name"]: v for v in edge["spec"]["template"]["spec"]["volumes"]}
    assert vols["purge-token"]["secret"]["secretName"] == name  # ... follows into the pods
    _validate(objs)


def test_the_committed_example_folder_is_current(tmp_path: Path) -> None:
    """deploy/kubernetes/example/ is `abr fleet k8s --spec deploy/fleet.example.yaml --out`:
    change the spec or the renderer and this fails until the folder is rendered again."""
    committed = ROOT / "deploy" / "kubernetes" / "example"
    files = write_folder(render(load_spec(EXAMPLE)), tmp_path, "abrstack")
    assert sorted(files) == sorted(p.name for p in committed.glob("*.yaml"))
    for f in files:
        assert (committed / f).read_text() == (tmp_path / f).read_text(), (
            f"{f} is stale: run abr fleet k8s --spec deploy/fleet.example.yaml "
            "--out deploy/kubernetes/example/")


def _free_port() -> int:
    from abrstack.stack import free_port

    return free_port()


def test_the_edge_pod_command_runs_and_stops_within_its_grace(tmp_path: Path) -> None:
    """The edge container's own arguments (cluster addresses swapped for local ones) start a
    real edge that answers /healthz; SIGTERM stops it, an idle keep-alive connection open,
    well inside terminationGracePeriodSeconds less the preStop sleep."""
    import os
    import signal
    import time

    import httpx

    from abrstack.k8s import GRACE_S, PRESTOP_S

    objs = render(shorthand(edges=1))
    c = _containers(objs)["edge-1"]
    token = tmp_path / "token"
    token.write_text("t" * 32 + "\n")
    http_port, tls_port = _free_port(), _free_port()
    swap = {"--host": "127.0.0.1", "--port": str(tls_port), "--http-port": str(http_port),
            "--cache-dir": str(tmp_path / "cache"), "--purge-token-file": str(token),
            "--origin": "http://127.0.0.1:9", "--redis": "redis://127.0.0.1:9/0",
            "--access-log": "off"}
    args = list(c["args"])
    for i, a in enumerate(args[:-1]):
        if a in swap:
            args[i + 1] = swap[a]
    proc = subprocess.Popen([sys.executable, "-m", "abrstack", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        url = f"http://127.0.0.1:{http_port}/healthz"
        while True:
            assert proc.poll() is None, "the edge exited"
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "no /healthz within 30 s"
            time.sleep(0.1)
        with httpx.Client() as keep:
            assert keep.get(url).status_code == 200  # a keep-alive connection stays open
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=GRACE_S)
            took = time.monotonic() - t0
        assert took <= EDGE_DRAIN_S + 2 < GRACE_S - PRESTOP_S
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
