"""Kubernetes manifests from the fleet spec (``abr fleet k8s``): the topology `abr fleet up`
runs, each container running the argv the same fleetspec builder gives the local process,
plus what a cluster adds (encoder job service and workers, Dask, the QoE aggregator,
autoscalers, disruption budgets, network policies, the purge-token Secret).

Pure: :func:`render` returns the objects as dicts; ``abrstack/k8s_cli.py`` writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from abrstack import k8s_scale
from abrstack.fleetspec import EdgeSpec, FleetSpec, edge_argv, origin_argv, steer_argv
from edge.server import DRAIN_S

QUIC_GRACE_S = 2
"""edge/server.py's default graceful_timeout of the HTTP/3 server."""

ORIGIN_PORT = 8080
EDGE_HTTP_PORT = 8081
EDGE_TLS_PORT = 8443
STEER_PORT = 8090
ENCODER_PORT = 8070
QOE_PORT = 9300
REDIS_PORT = 6379
DASK_PORT = 8786
DASK_DASHBOARD_PORT = 8787
UID = 10001
"""The image's non-root user and group (Dockerfile)."""
PURGE_SECRET = "abr-purge-token"
PURGE_FILE = "/etc/abr/purge/token"
EDGE_DRAIN_S = DRAIN_S + QUIC_GRACE_S
"""An edge's drain after SIGTERM (edge/server.py): granian waits at most DRAIN_S for open
connections, then the HTTP/3 server lets open requests finish for its graceful_timeout."""
PRESTOP_S = 10
"""preStop sleep: endpoints are removed and load balancers stop sending new connections
before the edge is told to stop."""
GRACE_S = PRESTOP_S + EDGE_DRAIN_S + 15
"""terminationGracePeriodSeconds of edges and shield: longer than preStop + drain."""


@dataclass(frozen=True)
class Options:
    """What the cluster adds to the spec."""

    image: str = "ghcr.io/abrstack/abrstack:latest"
    """The image every abrstack container runs (Dockerfile)."""
    namespace: str = "abrstack"
    """Namespace of every object."""
    domain: str | None = None
    """Public DNS domain: edges and steering are then ``NAME.DOMAIN`` to players; without it
    the in-cluster service names."""
    media_size: str = "100Gi"
    """Size of the shared media volume (ReadWriteMany)."""
    storage_class: str | None = None
    """StorageClass of the volumes (None: the cluster's default)."""
    edge_min: int = 2
    """Fewest pods per edge (PDB keeps one of them)."""
    edge_max: int = 20
    """Most pods per edge."""
    encoder_workers_max: int = 8
    """Most encoder workers (KEDA)."""
    dask_workers: int = 2
    """Dask workers."""
    dask_cluster_cr: bool = False
    """Dask as the dask-kubernetes ``DaskCluster`` resource instead of Deployments."""
    monitoring_namespace: str = "monitoring"
    """Where Prometheus and the Prometheus Adapter run (allowed to scrape every pod)."""
    redis_image: str = "redis:7.2"
    """Redis image (the abrstack image has no redis-server)."""


def _k8s_size(size: str) -> str:
    """A spec size (``2GiB``) as a Kubernetes quantity (``2Gi``)."""
    s = size.strip().replace(" ", "")
    for ours, theirs in (("KiB", "Ki"), ("MiB", "Mi"), ("GiB", "Gi"), ("TiB", "Ti"),
                         ("KB", "k"), ("MB", "M"), ("GB", "G"), ("TB", "T"), ("B", "")):
        if s.lower().endswith(ours.lower()):
            return s[: -len(ours)] + theirs
    return s


def _bytes(size: str) -> int:
    from edge.policy import parse_size

    return parse_size(size)


def _mi(n_bytes: int) -> str:
    return f"{-(-n_bytes // (1 << 20))}Mi"


class _Builder:
    def __init__(self, spec: FleetSpec, opt: Options) -> None:
        self.spec, self.opt = spec, opt
        self.ns = opt.namespace
        self.objects: list[dict[str, Any]] = []
        self.redis_url = spec.redis or f"redis://redis:{REDIS_PORT}/0"

    # -------------------------------------------------------------- helpers
    def labels(self, name: str, component: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "abrstack",
                "app.kubernetes.io/component": component}

    def meta(self, name: str, component: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "namespace": self.ns, "labels": self.labels(name, component),
                **extra}

    def add(self, obj: dict[str, Any]) -> None:
        self.objects.append(obj)

    def public(self, name: str, port: int) -> str:
        if self.opt.domain:
            return f"http://{name}.{self.opt.domain}:{port}"
        return f"http://{name}:{port}"

    def container(self, name: str, argv: Sequence[str], ports: list[dict[str, Any]],
                  cpu_m: int, mem: str, mem_limit: str, health_port: int | None,
                  mounts: list[dict[str, Any]], env: list[dict[str, Any]] | None = None,
                  health_path: str = "/healthz",
                  health_port_name: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "name": name, "image": self.opt.image, "imagePullPolicy": "IfNotPresent",
            "command": [argv[0]], "args": list(argv[1:]), "ports": ports,
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    *(env or [])],
            "resources": {"requests": {"cpu": f"{cpu_m}m", "memory": mem},
                          "limits": {"cpu": f"{2 * cpu_m}m", "memory": mem_limit}},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
        }
        if health_port is not None:
            # A named port where given: the DaskCluster CRD types probe ports as strings.
            probe = {"httpGet": {"path": health_path, "port": health_port_name or health_port},
                     "periodSeconds": 5}
            c["readinessProbe"] = {**probe, "failureThreshold": 2}
            c["livenessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 6,
                                  "initialDelaySeconds": 10}
            c["startupProbe"] = {**probe, "periodSeconds": 2, "failureThreshold": 60}
        return c

    def pod(self, name: str, component: str, containers: list[dict[str, Any]],
            volumes: list[dict[str, Any]], grace_s: int = 30, uid: int = UID,
            redis_client: bool = False) -> dict[str, Any]:
        labels = self.labels(name, component)
        if redis_client:
            labels["abrstack/redis-client"] = "true"
        return {
            "metadata": {"labels": labels,
                         "annotations": {"prometheus.io/scrape": "true"}},
            "spec": {
                "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                                    "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}},
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": grace_s,
                "containers": containers,
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}, *volumes],
            },
        }

    def deployment(self, name: str, component: str, replicas: int | None,
                   template: dict[str, Any]) -> None:
        spec: dict[str, Any] = {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": template,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        }
        if replicas is not None:
            spec["replicas"] = replicas
        self.add({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": self.meta(name, component), "spec": spec})

    def service(self, name: str, component: str, ports: list[dict[str, Any]],
                public: bool = False, headless: bool = False) -> None:
        spec: dict[str, Any] = {"selector": {"app.kubernetes.io/name": name}, "ports": ports}
        if public:
            # TCP and UDP on one port (h2 and h3): mixed-protocol LoadBalancers are GA since
            # 1.26. Local: keep the player's address and skip a second hop.
            spec["type"] = "LoadBalancer"
            spec["externalTrafficPolicy"] = "Local"
        if headless:
            spec["clusterIP"] = "None"
        self.add({"apiVersion": "v1", "kind": "Service", "metadata": self.meta(name, component),
                  "spec": spec})

    def pdb(self, name: str, component: str, **budget: Any) -> None:
        self.add({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                  "metadata": self.meta(name, component),
                  "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                           **budget}})

    def policy(self, name: str, selector: dict[str, str], sources: list[dict[str, Any]] | None,
               ports: list[dict[str, Any]]) -> None:
        """Ingress to pods matching ``selector`` only from ``sources`` (None: anywhere) on
        ``ports``, and from the monitoring namespace (scrapes)."""
        rules: list[dict[str, Any]] = [{"ports": ports}]
        if sources is not None:
            rules[0]["from"] = sources
        rules.append({"from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": self.opt.monitoring_namespace}}}]})
        self.add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": {"name": name, "namespace": self.ns},
                  "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
                           "ingress": rules}})

    # -------------------------------------------------------------- parts
    def urls(self) -> dict[str, str]:
        s = self.spec
        urls = {s.origin.name: s.origin.url or f"http://{s.origin.name}:{ORIGIN_PORT}"}
        if s.shield is not None:
            urls[s.shield.name] = f"http://{s.shield.name}:{EDGE_HTTP_PORT}"
        for e in s.edges:
            urls[e.name] = self.public(e.name, EDGE_HTTP_PORT)
        return urls

    def base(self) -> None:
        self.add({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": self.ns, "labels": {"app.kubernetes.io/part-of": "abrstack"}}})
        self.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": self.meta("media", "storage"),
                  "spec": {"accessModes": ["ReadWriteMany"],
                           "resources": {"requests": {"storage": self.opt.media_size}},
                           **({"storageClassName": self.opt.storage_class}
                              if self.opt.storage_class else {})}})
        # Nothing reaches a pod unless a policy below lets it.
        self.add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": {"name": "default-deny-ingress", "namespace": self.ns},
                  "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})

    def redis(self) -> None:
        if self.spec.redis:
            return
        name = "redis"
        argv = ["redis-server", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", "/data",
                "--port", str(REDIS_PORT), "--protected-mode", "no"]
        c = self.container(name, argv, [{"name": "redis", "containerPort": REDIS_PORT}],
                           250, "256Mi", "1Gi", None, [{"name": "data", "mountPath": "/data"}])
        c["image"] = self.opt.redis_image
        ping = {"exec": {"command": ["redis-cli", "-p", str(REDIS_PORT), "ping"]},
                "periodSeconds": 10}
        c["readinessProbe"] = ping
        c["livenessProbe"] = {**ping, "failureThreshold": 6}
        tpl = self.pod(name, "redis", [c], [], uid=999)
        self.add({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": self.meta(name, "redis"),
                  "spec": {"serviceName": name, "replicas": 1,
                           "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                           "template": tpl,
                           "volumeClaimTemplates": [self._claim("data", "8Gi")]}})
        self.service(name, "redis", [{"name": "redis", "port": REDIS_PORT}], headless=True)
        self.policy(name, {"app.kubernetes.io/name": name},
                    [{"podSelector": {"matchLabels": {"abrstack/redis-client": "true"}}}],
                    [{"protocol": "TCP", "port": REDIS_PORT}])

    def _claim(self, name: str, size: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": size}}}
        if self.opt.storage_class:
            spec["storageClassName"] = self.opt.storage_class
        return {"metadata": {"name": name}, "spec": spec}

    def origin(self) -> None:
        s = self.spec
        if s.origin.url:
            return
        name = s.origin.name
        argv = origin_argv(s, media="/media", host="0.0.0.0", port=ORIGIN_PORT, access_log="-")
        c = self.container(name, argv, [{"name": "http", "containerPort": ORIGIN_PORT}],
                           500 * s.origin.workers, "256Mi", "1Gi", ORIGIN_PORT,
                           [{"name": "media", "mountPath": "/media", "readOnly": True}])
        vols = [{"name": "media", "persistentVolumeClaim": {"claimName": "media", "readOnly": True}}]
        self.deployment(name, "origin", 2, self.pod(name, "origin", [c], vols))
        self.service(name, "origin", [{"name": "http", "port": ORIGIN_PORT}])
        self.pdb(name, "origin", minAvailable=1)
        # Only the shield reaches the origin; the edges too when the spec lets them fall back
        # to it while the shield is down (shield.fallback_to_origin), or when there is none.
        tiers = ["shield"] if s.shield is not None else ["edge"]
        if s.shield is not None and s.shield_fallback:
            tiers.append("edge")
        sources = [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": t}}}
                   for t in tiers]
        self.policy(name, {"app.kubernetes.io/name": name}, sources,
                    [{"protocol": "TCP", "port": ORIGIN_PORT}])

    def _edge_container(self, node: EdgeSpec, redis_url: str | None) -> dict[str, Any]:
        argv = edge_argv(self.spec, node, urls=self.urls(), cache_dir="/cache",
                         redis_url=redis_url, host="0.0.0.0", port=EDGE_TLS_PORT,
                         http_port=EDGE_HTTP_PORT, access_log="-")
        argv += ["--purge-token-file", PURGE_FILE]
        mem = _bytes(node.memory_size) * node.workers
        c = self.container(
            node.name, argv,
            [{"name": "http", "containerPort": EDGE_HTTP_PORT, "protocol": "TCP"},
             {"name": "https", "containerPort": EDGE_TLS_PORT, "protocol": "TCP"},
             {"name": "h3", "containerPort": EDGE_TLS_PORT, "protocol": "UDP"}],
            k8s_scale.EDGE_CPU_M * node.workers, _mi(mem + (384 << 20)),
            _mi(2 * mem + (768 << 20)), EDGE_HTTP_PORT,
            [{"name": "cache", "mountPath": "/cache"},
             {"name": "purge-token", "mountPath": "/etc/abr/purge", "readOnly": True}])
        c["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_S)]}}}
        return c

    def _purge_volume(self) -> dict[str, Any]:
        return {"name": "purge-token",
                "secret": {"secretName": PURGE_SECRET, "defaultMode": 0o440,
                           "items": [{"key": "token", "path": "token"}]}}

    def _edge_service(self, name: str, component: str) -> None:
        self.service(name, component, [
            {"name": "http", "port": EDGE_HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
            {"name": "https", "port": EDGE_TLS_PORT, "targetPort": "https", "protocol": "TCP"},
            {"name": "h3", "port": EDGE_TLS_PORT, "targetPort": "h3", "protocol": "UDP"}],
            public=component == "edge")

    def shield(self) -> None:
        node = self.spec.shield
        if node is None:
            return
        c = self._edge_container(node, None)  # as `abr fleet up`: the shield takes no bus
        tpl = self.pod(node.name, "shield", [c], [self._purge_volume()], grace_s=GRACE_S)
        disk = _bytes(node.cache_size)
        claim = self._claim("cache", _mi(disk + disk // 10))  # diskcache's bound is soft
        self.add({"apiVersion": "apps/v1", "kind": "StatefulSet",
                  "metadata": self.meta(node.name, "shield"),
                  "spec": {"serviceName": node.name, "replicas": 1,
                           "selector": {"matchLabels": {"app.kubernetes.io/name": node.name}},
                           "template": tpl, "volumeClaimTemplates": [claim]}})
        self._edge_service(node.name, "shield")
        # One shield pod: the budget lets a drain take it (edges fall back to the origin when
        # the spec says so) but never two at once if it is scaled out.
        self.pdb(node.name, "shield", maxUnavailable=1)
        self.policy(node.name, {"app.kubernetes.io/name": node.name},
                    [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "edge"}}}],
                    [{"protocol": "TCP", "port": EDGE_HTTP_PORT},
                     {"protocol": "TCP", "port": EDGE_TLS_PORT}])

    def edges(self) -> None:
        for node in self.spec.edges:
            c = self._edge_container(node, self.redis_url)
            disk = _bytes(node.cache_size)
            vols = [{"name": "cache", "emptyDir": {"sizeLimit": _mi(disk + disk // 10)}},
                    self._purge_volume()]
            tpl = self.pod(node.name, "edge", [c], vols, grace_s=GRACE_S, redis_client=True)
            self.deployment(node.name, "edge", None, tpl)  # replicas: the HPA's
            self._edge_service(node.name, "edge")
            self.pdb(node.name, "edge", minAvailable=1)
            self.add(k8s_scale.edge_hpa(node.name, self.ns, self.labels(node.name, "edge"),
                                        self.opt.edge_min, self.opt.edge_max))
        # Players reach the edges from anywhere (h1, h2 over TCP, h3 over UDP).
        self.policy("edges-from-players", {"app.kubernetes.io/component": "edge"}, None,
                    [{"protocol": "TCP", "port": EDGE_HTTP_PORT},
                     {"protocol": "TCP", "port": EDGE_TLS_PORT},
                     {"protocol": "UDP", "port": EDGE_TLS_PORT}])

    def steering(self) -> None:
        st = self.spec.steering
        if not st.enabled:
            return
        argv = steer_argv(self.spec, urls=self.urls(), redis_url=self.redis_url, host="0.0.0.0",
                          port=STEER_PORT)
        argv += ["--public-url", self.public(st.name, STEER_PORT)]
        c = self.container(st.name, argv, [{"name": "http", "containerPort": STEER_PORT}],
                           250, "128Mi", "512Mi", STEER_PORT, [])
        self.deployment(st.name, "steer", 2, self.pod(st.name, "steer", [c], [],
                                                      redis_client=True))
        self.service(st.name, "steer", [{"name": "http", "port": STEER_PORT}], public=True)
        self.pdb(st.name, "steer", minAvailable=1)
        self.policy(st.name, {"app.kubernetes.io/name": st.name}, None,
                    [{"protocol": "TCP", "port": STEER_PORT}])

    def _media_rw(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return ([{"name": "media", "mountPath": "/media"}],
                [{"name": "media", "persistentVolumeClaim": {"claimName": "media"}}])

    def encoder(self) -> None:
        mounts, vols = self._media_rw()
        argv = ["abr", "encoder", "serve", "--host", "0.0.0.0", "--port", str(ENCODER_PORT),
                "--inputs", "/media/sources", "--media", "/media", "--redis", self.redis_url]
        c = self.container("encoder", argv, [{"name": "http", "containerPort": ENCODER_PORT}],
                           250, "256Mi", "1Gi", ENCODER_PORT, mounts)
        self.deployment("encoder", "encoder", 1, self.pod("encoder", "encoder", [c], vols,
                                                          redis_client=True))
        self.service("encoder", "encoder", [{"name": "http", "port": ENCODER_PORT}])
        # Jobs are submitted from inside the cluster (operators, CI), never by players.
        self.policy("encoder", {"app.kubernetes.io/name": "encoder"},
                    [{"podSelector": {}}], [{"protocol": "TCP", "port": ENCODER_PORT}])
        name = "encoder-worker"
        wargv = ["abr", "encoder", "worker", "--redis", self.redis_url, "--media", "/media",
                 "--inputs", "/media/sources", "--name", "$(POD_NAME)"]
        w = self.container(name, wargv, [], k8s_scale.ENCODER_CPU_M, "1Gi", "4Gi", None, mounts)
        # A worker stopped mid-encode leaves its job to be reclaimed by another (run from 0%).
        self.deployment(name, "encoder-worker", None,
                        self.pod(name, "encoder-worker", [w], vols, grace_s=60,
                                 redis_client=True))
        host = self.redis_url.split("://", 1)[1].split("/", 1)
        db = int(host[1]) if len(host) > 1 and host[1].isdigit() else 0
        self.add(k8s_scale.encoder_scaledobject(name, self.ns, self.labels(name, "encoder-worker"),
                                                host[0].rsplit("@", 1)[-1], db,
                                                self.opt.encoder_workers_max))

    def dask(self) -> None:
        sched_argv = ["dask", "scheduler", "--port", str(DASK_PORT),
                      "--dashboard-address", f":{DASK_DASHBOARD_PORT}"]
        worker_argv = ["dask", "worker", f"tcp://dask-scheduler:{DASK_PORT}", "--nworkers", "1",
                       "--nthreads", "1", "--dashboard-address", f":{DASK_DASHBOARD_PORT}"]
        mounts, vols = self._media_rw()
        ports = [{"name": "tcp-comm", "containerPort": DASK_PORT},
                 {"name": "http-dashboard", "containerPort": DASK_DASHBOARD_PORT}]
        sched = self.container("scheduler", sched_argv, ports, 250, "512Mi", "2Gi",
                               DASK_DASHBOARD_PORT, [], health_path="/health",
                               health_port_name="http-dashboard")
        worker = self.container("worker", worker_argv, [{"name": "http-dashboard",
                                                         "containerPort": DASK_DASHBOARD_PORT}],
                                1000, "2Gi", "4Gi", DASK_DASHBOARD_PORT, mounts,
                                health_path="/health", health_port_name="http-dashboard")
        if self.opt.dask_cluster_cr:
            sp = self.pod("dask", "dask", [sched], [])["spec"]
            wp = self.pod("dask", "dask", [worker], vols)["spec"]
            self.add({"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
                      "metadata": self.meta("dask", "dask"),
                      "spec": {"worker": {"replicas": self.opt.dask_workers, "spec": wp},
                               "scheduler": {"spec": sp, "service": {
                                   "type": "ClusterIP",
                                   "selector": {"dask.org/cluster-name": "dask",
                                                "dask.org/component": "scheduler"},
                                   "ports": [{"name": "tcp-comm", "protocol": "TCP",
                                              "port": DASK_PORT, "targetPort": "tcp-comm"},
                                             {"name": "http-dashboard", "protocol": "TCP",
                                              "port": DASK_DASHBOARD_PORT,
                                              "targetPort": "http-dashboard"}]}}}})
        else:
            self.deployment("dask-scheduler", "dask", 1,
                            self.pod("dask-scheduler", "dask", [sched], []))
            self.service("dask-scheduler", "dask",
                         [{"name": "tcp-comm", "port": DASK_PORT},
                          {"name": "http-dashboard", "port": DASK_DASHBOARD_PORT}])
            self.deployment("dask-worker", "dask", self.opt.dask_workers,
                            self.pod("dask-worker", "dask", [worker], vols))
        # Scheduler and workers talk among themselves (workers on random ports) and take
        # work from the encoder's pods.
        self.policy("dask", {"app.kubernetes.io/component": "dask"},
                    [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": c}}}
                     for c in ("dask", "encoder", "encoder-worker")], [])

    def qoe(self) -> None:
        argv = ["abr", "qoe", "--redis", self.redis_url, "--host", "0.0.0.0",
                "--port", str(QOE_PORT)]
        c = self.container("qoe", argv, [{"name": "http", "containerPort": QOE_PORT}],
                           250, "256Mi", "1Gi", QOE_PORT, [])
        self.deployment("qoe", "qoe", 1, self.pod("qoe", "qoe", [c], [], redis_client=True))
        self.service("qoe", "qoe", [{"name": "http", "port": QOE_PORT}])
        self.policy("qoe", {"app.kubernetes.io/name": "qoe"}, [{"podSelector": {}}],
                    [{"protocol": "TCP", "port": QOE_PORT}])

    def adapter(self) -> None:
        import yaml

        self.add({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "prometheus-adapter-abrstack",
                               "namespace": self.opt.monitoring_namespace,
                               "labels": {"app.kubernetes.io/part-of": "abrstack"}},
                  "data": {"config.yaml": yaml.safe_dump(k8s_scale.adapter_rules(),
                                                         sort_keys=False)}})


def render(spec: FleetSpec, opt: Options | None = None) -> list[dict[str, Any]]:
    """Every object of the fleet, in apply order (namespace and storage first)."""
    b = _Builder(spec, opt or Options())
    for part in (b.base, b.redis, b.origin, b.shield, b.edges, b.steering, b.encoder, b.dask,
                 b.qoe, b.adapter):
        part()
    return b.objects


def purge_secret(namespace: str, token: str) -> dict[str, Any]:
    """The Secret the edges read the purge token from (as a file, never an argument)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": PURGE_SECRET, "namespace": namespace},
            "stringData": {"token": token}}
