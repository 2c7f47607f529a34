"""The local testbed behaves like the parts of a real cluster the collection relies on:
scheduling and Deployment rollout, Namespace deletion, PodSecurity admission, audit logging,
and a bounded lifetime for every process it starts."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from .conftest import TESTBED, LocalTestbed, wait_until

FAKE_NODES = {"kwok-node-0", "kwok-node-1"}
# kwok never pulls it; any valid reference works. Same registry as a real cluster would use.
IMAGE = "registry.k8s.io/pause:3.10"


def restricted_container(name: str = "app") -> client.V1Container:
    """A container the `restricted` Pod Security level admits."""
    return client.V1Container(
        name=name,
        image=IMAGE,
        security_context=client.V1SecurityContext(
            allow_privilege_escalation=False,
            run_as_non_root=True,
            run_as_user=65532,
            capabilities=client.V1Capabilities(drop=["ALL"]),
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        ),
    )


def deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app.kubernetes.io/name": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[restricted_container()]),
            ),
        ),
    )


def test_fake_nodes_are_ready_through_kubectl(testbed: LocalTestbed) -> None:
    nodes = json.loads(testbed.kubectl_run("get", "nodes", "-o", "json").stdout)["items"]
    ready = {
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    }
    assert ready >= FAKE_NODES
    version = json.loads(testbed.kubectl_run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == version["clientVersion"]["gitVersion"]
    assert version["serverVersion"]["gitVersion"].startswith("v1.35.")


def test_deployment_becomes_available(
    testbed: LocalTestbed, namespace: Callable[..., str], apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    ns = namespace("deploy")
    apps.create_namespaced_deployment(ns, deployment("web", replicas=2))

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("web", ns).status
        assert status is not None
        conditions = {c.type: c.status for c in status.conditions or []}
        return conditions.get("Available") == "True" and status.available_replicas == 2

    wait_until("Deployment web Available with 2 replicas", available, timeout=90)
    pods = core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/name=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec is not None
        assert pod.status is not None
        # The scheduler bound it to a kwok Node, and kwok made it Running with an IP.
        assert pod.spec.node_name in FAKE_NODES
        assert pod.status.phase == "Running"
        assert pod.status.pod_ip
        assert {c.type: c.status for c in pod.status.conditions or []}["Ready"] == "True"


def test_namespace_deletion_completes(
    namespace: Callable[..., str], apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    ns = namespace("gone")
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"}))
    apps.create_namespaced_deployment(ns, deployment("web", replicas=1))
    wait_until("a Pod in the namespace", lambda: core.list_namespaced_pod(ns).items)

    core.delete_namespace(ns)

    def gone() -> bool:
        try:
            core.read_namespace(ns)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    # The namespace controller must empty it first (Deployment, ReplicaSet, Pod, ConfigMap, ...).
    wait_until(f"Namespace {ns} to disappear", gone, timeout=90)


def test_privileged_pod_is_rejected_by_pod_security_restricted(
    namespace: Callable[..., str], core: client.CoreV1Api
) -> None:
    ns = namespace("psa", labels={"pod-security.kubernetes.io/enforce": "restricted"})
    privileged = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(name="app", image=IMAGE, security_context=client.V1SecurityContext(privileged=True))
            ]
        ),
    )
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(ns, privileged)
    assert rejected.value.status == 403
    body = json.loads(rejected.value.body or "{}")
    assert 'violates PodSecurity "restricted:latest"' in body["message"]
    assert 'privileged (container "app" must not set securityContext.privileged=true)' in body["message"]

    # The same namespace admits a Pod that meets the level: the rejection was about privilege.
    allowed = client.V1Pod(
        metadata=client.V1ObjectMeta(name="restricted"), spec=client.V1PodSpec(containers=[restricted_container()])
    )
    created = core.create_namespaced_pod(ns, allowed).metadata
    assert created is not None
    assert created.uid


def test_audit_log_records_requests_per_object(
    testbed: LocalTestbed, namespace: Callable[..., str], core: client.CoreV1Api
) -> None:
    ns = namespace("audit")
    name = f"audited-{uuid.uuid4().hex[:8]}"
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))
    for _attempt in range(3):
        core.read_namespaced_config_map(name, ns)
    core.patch_namespaced_config_map(name, ns, {"data": {"k": "v"}})

    def events() -> list[dict[str, Any]]:
        found = []
        for line in testbed.audit_log.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if ref.get("resource") == "configmaps" and ref.get("namespace") == ns and ref.get("name") == name:
                found.append(event)
        return found

    # The log backend is blocking: events are written before the response is sent.
    verbs = [e["verb"] for e in events()]
    assert sorted(verbs) == ["create", "get", "get", "get", "patch"]
    create = next(e for e in events() if e["verb"] == "create")
    assert create["level"] == "Metadata"
    assert create["stage"] == "ResponseComplete"
    assert create["user"]["username"] == "zerotrust-aks-admin"
    assert create["responseStatus"]["code"] == 201


def test_processes_stop_by_themselves_after_their_lifetime(tmp_path: Path) -> None:
    """A second, short-lived testbed: every process is gone after --lifetime without `down`."""
    env = {**os.environ, "ZEROTRUST_AKS_TESTBED_DIR": str(tmp_path / "short")}
    lifetime = 45
    subprocess.run([str(TESTBED), "up", "--lifetime", f"{lifetime}s"], env=env, check=True, capture_output=True)
    try:
        info = json.loads((tmp_path / "short" / "state.json").read_text())
        pids = [p["pid"] for p in info["processes"]]
        assert len(pids) == 5
        assert subprocess.run([str(TESTBED), "status"], env=env, check=False).returncode == 0

        def all_exited() -> bool:
            return not any(Path(f"/proc/{pid}").exists() for pid in pids)

        # `timeout` sends TERM at the lifetime and KILL 30 s later.
        wait_until(
            "every testbed process to exit",
            all_exited,
            timeout=max(0, info["expires_at"] - time.time()) + 40,
            interval=1,
        )
        assert subprocess.run([str(TESTBED), "status"], env=env, capture_output=True, check=False).returncode == 1
    finally:
        subprocess.run([str(TESTBED), "down"], env=env, check=True, capture_output=True)
    assert not (tmp_path / "short").exists()
