"""The fake Nodes kwok manages: Pods scheduled there become Running and Ready, no container runs."""

from __future__ import annotations

from typing import Any

from .api import Api

FAKE_NODES = ("kwok-node-0", "kwok-node-1")
# kwok hands out Pod IPs from POD_CIDR; Nodes get NODE_NET addresses. Data only: no traffic
# ever goes to them (no kubelet, no container runtime, no routes).
POD_CIDR = "10.244.0.0/24"
NODE_NET = "10.240.0."


class NodeError(Exception):
    pass


def fake_node(name: str, address: str) -> dict[str, Any]:
    """A Node that kwok manages. No kwok taint: ordinary Pods (the collection's Deployments)
    schedule onto it without tolerations. ADDRESS is data only: nothing listens there."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64",
                "kubeProxyVersion": "fake",
                "kubeletVersion": "fake",
                "operatingSystem": "linux",
            },
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "phase": "Running",
        },
    }


def create_fake_nodes(api: Api) -> None:
    for index, node in enumerate(FAKE_NODES):
        status, body = api.request("POST", "/api/v1/nodes", fake_node(node, f"{NODE_NET}{index + 10}"))
        if status not in (201, 409):
            raise NodeError(f"creating Node {node}: HTTP {status} {body}")


def nodes_ready(api: Api) -> bool:
    for node in FAKE_NODES:
        status, body = api.request("GET", f"/api/v1/nodes/{node}")
        if status != 200:
            return False
        conditions = {c["type"]: c["status"] for c in body.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") != "True":
            return False
    return True
