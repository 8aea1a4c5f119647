"""``abr fleet k8s``: the fleet spec as Kubernetes manifests, on stdout (one multi-document
YAML) or as a kustomize folder (``--out DIR``: one file per kind, kustomization.yaml, the purge
token generated into a file that .gitignore keeps out of the repository)."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from abrstack.errors import AbrError


class K8sError(AbrError):
    """A bad option of ``abr fleet k8s`` (one sentence)."""


IMAGE_RE = re.compile(r"[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*"
                      r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?")
NS_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def register(sub: Any) -> None:
    """Add ``k8s`` to ``abr fleet``'s actions."""
    k = sub.add_parser(
        "k8s", help="render the fleet as Kubernetes manifests (stdout or a kustomize folder)",
        description="Render the fleet spec as Kubernetes manifests: the topology `abr fleet up` "
                    "runs (Redis, origin, shield, edges, steering) with the same arguments, plus "
                    "the encoder job service and its KEDA-scaled workers, Dask, the QoE "
                    "aggregator, HPAs for the edges (CPU and bytes/s per pod through the "
                    "Prometheus Adapter, whose rule is a ConfigMap in the monitoring namespace), "
                    "PodDisruptionBudgets, NetworkPolicies and the purge-token Secret. "
                    "Nothing contacts a cluster.")
    k.add_argument("--spec", type=Path, default=None, metavar="FILE",
                   help="fleet spec (YAML, see deploy/fleet.example.yaml)")
    k.add_argument("--edges", type=int, default=None, metavar="N", help="edges (default 2)")
    k.add_argument("--shield", action=argparse.BooleanOptionalAction, default=None,
                   help="a shield tier between the edges and the origin")
    k.add_argument("--origin", default=None, metavar="URL", help="an origin outside the cluster")
    k.add_argument("--redis", default=None, metavar="URL",
                   help="an external Redis (default: a Redis StatefulSet)")
    k.add_argument("--media", type=Path, default=None, help=argparse.SUPPRESS)
    k.add_argument("--image", default="ghcr.io/abrstack/abrstack:latest",
                   metavar="REGISTRY/abrstack:TAG",
                   help="image of the abrstack containers (default ghcr.io/abrstack/abrstack:latest)")
    k.add_argument("--namespace", default="abrstack", help="namespace (default abrstack)")
    k.add_argument("--domain", default=None,
                   help="public DNS domain: players reach NAME.DOMAIN (default: service names)")
    k.add_argument("--edge-max", type=int, default=20, metavar="N",
                   help="most pods per edge (HPA; default 20)")
    k.add_argument("--dask-cluster", action="store_true",
                   help="Dask as a dask-kubernetes DaskCluster resource (needs its operator) "
                        "instead of two Deployments")
    k.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="write a kustomize folder (e.g. deploy/kubernetes/NAME/) instead of stdout")
    k.set_defaults(handler=_k8s)


def _options(args: argparse.Namespace) -> Any:
    from abrstack.k8s import Options

    if not IMAGE_RE.fullmatch(args.image):
        raise K8sError(f"--image {args.image!r} is not an image reference (REGISTRY/NAME:TAG).")
    if not NS_RE.fullmatch(args.namespace):
        raise K8sError(f"--namespace {args.namespace!r} must be an RFC 1123 label.")
    if args.domain is not None and not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?",
                                                    args.domain):
        raise K8sError(f"--domain {args.domain!r} is not a DNS name.")
    if not 2 <= args.edge_max <= 1000:
        raise K8sError(f"--edge-max must be from 2 to 1000, not {args.edge_max}.")
    return Options(image=args.image, namespace=args.namespace, domain=args.domain,
                   edge_max=args.edge_max, dask_cluster_cr=args.dask_cluster)


def _dump(objs: list[dict[str, Any]]) -> str:
    import yaml

    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objs)


FILES = (("namespace", ("Namespace",)), ("storage", ("PersistentVolumeClaim",)),
         ("workloads", ("Deployment", "StatefulSet", "DaskCluster")), ("services", ("Service",)),
         ("disruption", ("PodDisruptionBudget",)), ("network", ("NetworkPolicy",)),
         ("autoscaling", ("HorizontalPodAutoscaler", "ScaledObject")),
         ("prometheus-adapter", ("ConfigMap",)))


def write_folder(objs: list[dict[str, Any]], out: Path, namespace: str) -> list[str]:
    """The objects as a kustomize folder; the file names, kustomization.yaml last."""
    import yaml

    from abrstack.k8s import PURGE_SECRET

    out.mkdir(parents=True, exist_ok=True)
    names = []
    for stem, kinds in FILES:
        part = [o for o in objs if o["kind"] in kinds]
        if part:
            (out / f"{stem}.yaml").write_text(_dump(part))
            names.append(f"{stem}.yaml")
    left = {o["kind"] for o in objs} - {k for _, ks in FILES for k in ks}
    if left:
        raise K8sError(f"no file for kinds {sorted(left)}")
    token = out / "purge-token"
    if not token.exists():  # kept across renders; never committed (.gitignore)
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    (out / ".gitignore").write_text("purge-token\n")
    kust = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": names,
            "secretGenerator": [{"name": PURGE_SECRET, "namespace": namespace,
                                 "files": ["token=purge-token"]}],
            "generatorOptions": {"disableNameSuffixHash": False}}
    (out / "kustomization.yaml").write_text(
        "# Made by `abr fleet k8s --out`; apply with `kubectl apply -k FOLDER`. The purge token is\n"
        "# the file purge-token (made at the first render, kept out of git by .gitignore).\n"
        + yaml.safe_dump(kust, sort_keys=False))
    return [*names, "kustomization.yaml"]


def _k8s(args: argparse.Namespace) -> int:
    from abrstack.fleet import spec_from_args
    from abrstack.k8s import purge_secret, render

    opt = _options(args)
    spec = spec_from_args(args)
    objs = render(spec, opt)
    if args.out is None:
        sys.stdout.write(_dump([*objs[:1], purge_secret(opt.namespace, secrets.token_urlsafe(32)),
                                *objs[1:]]))
        return 0
    try:
        files = write_folder(objs, args.out, opt.namespace)
    except OSError as exc:
        raise K8sError(f"cannot write {args.out}: {exc.strerror or exc}.") from None
    print(f"abr fleet k8s: wrote {', '.join(files)} to {args.out}; "
          f"apply with: kubectl apply -k {args.out}")
    return 0
