# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerotrust.aks.k8s_apply against the real API server of the testbed, run by ansible-playbook
as a user runs it: created/unchanged from the server's answers, the ownership marker, check
mode, diff, Secrets kept out of the output, rollout timeout, pruning, teardown and request counts
(checked against the API server's audit log)."""

from __future__ import annotations

import base64
import json
import threading
import time
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.playbook import PlaybookRun, run_playbook

from .conftest import LocalTestbed

REPO = Path(__file__).resolve().parents[2]
OWNER_LABEL = "zerotrust.aks/owned-by"
USER_AGENT = "zerotrust.aks/k8s_apply"
CLIENT_SECRET = "client-secret-value-5d1c2b"  # noqa: S105 - must never be printed


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def deployment(namespace: str, name: str, **pod_spec: t.Any) -> dict[str, t.Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"zerotrust.aks/secrets-checksum": "auto"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.k8s.io/pause:3.10",
                            "envFrom": [{"secretRef": {"name": "oauth"}}],
                        }
                    ],
                    **pod_spec,
                },
            },
        },
    }


def stack(ns: str, user_ns: str, cluster_name: str, configmaps: int = 20) -> list[dict[str, t.Any]]:
    """About as many objects as the cluster layer, in a new namespace, a user's namespace and
    cluster-scoped."""
    objects: list[dict[str, t.Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": ns}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {"selector": {"app.kubernetes.io/name": "app"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        deployment(ns, "app"),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {"defaultBackend": {"service": {"name": "app", "port": {"number": 80}}}},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_name},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "in-user-ns", "namespace": user_ns}},
    ]
    objects += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i}", "namespace": ns},
            "data": {"i": str(i)},
        }
        for i in range(configmaps)
    ]
    return objects


def secret_specs(ns: str) -> list[dict[str, t.Any]]:
    return [
        {"namespace": ns, "name": "oauth", "data": {"client-secret": {"value_from": "client_secret"}}},
        {"namespace": ns, "name": "cookie", "generate": {"type": "cookie_secret", "key": "cookie-secret"}},
    ]


class Applier:
    """Runs k8s_apply through ansible-playbook and returns its result (from a file, so the
    assertions do not depend on the callback's format)."""

    def __init__(self, testbed: LocalTestbed, env: dict[str, str], tmp_path: Path) -> None:
        self.testbed = testbed
        self.env = dict(env, KUBECONFIG=str(testbed.kubeconfig))
        self.tmp_path = tmp_path
        self.runs = 0
        self.last: PlaybookRun | None = None
        self.owners: set[str] = set()
        (tmp_path / "inventory").write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={REPO / '.venv/bin/python'}\n"
        )

    def __call__(
        self,
        env: dict[str, str] | None = None,
        check: bool = False,
        diff: bool = False,
        verbosity: int = 0,
        **args: t.Any,
    ) -> dict[str, t.Any]:
        self.runs += 1
        self.owners.add(str(args.get("owner")))
        result_file = self.tmp_path / f"result-{self.runs}.json"
        playbook = self.tmp_path / f"apply-{self.runs}.yml"
        tasks = [
            {
                "name": "Apply the objects",
                "zerotrust.aks.k8s_apply": args,
                "register": "applied",
                "ignore_errors": True,
            },
            {
                "name": "Save the result for the test",
                "ansible.builtin.copy": {
                    "content": "{{ applied | to_json }}",
                    "dest": str(result_file),
                    "mode": "0600",
                },
                "check_mode": False,
                "diff": False,
            },
        ]
        playbook.write_text(
            json.dumps([{"name": "k8s_apply", "hosts": "localhost", "gather_facts": False, "tasks": tasks}])
        )
        run = run_playbook(
            playbook,
            env=env or self.env,
            inventory=[self.tmp_path / "inventory"],
            check_mode=check,
            diff=diff,
            verbosity=verbosity,
            timeout=300,
        )
        self.last = run
        return t.cast(dict[str, t.Any], json.loads(result_file.read_text()))

    def get(self, objects: list[dict[str, t.Any]]) -> dict[tuple[str, str, str], dict[str, t.Any]]:
        """The objects as the API server has them now, by (kind, namespace, name); absent ones left out."""
        listing = self.tmp_path / "objects.json"
        listing.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        done = self.testbed.kubectl_run("get", "-f", str(listing), "-o", "json", "--ignore-not-found")
        found: dict[str, t.Any] = json.loads(done.stdout) if done.stdout.strip() else {"kind": "List", "items": []}
        items: list[dict[str, t.Any]] = found["items"] if found.get("kind") == "List" else [found]
        return {(i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"]): i for i in items}


@pytest.fixture
def apply(testbed: LocalTestbed, ansible_env: dict[str, str], tmp_path: Path) -> Iterator[Applier]:
    applier = Applier(testbed, ansible_env, tmp_path)
    yield applier
    # Leave a shared testbed as found: what the tests created carries their owner's marker
    # (objects in the tests' own user namespaces go with those namespaces).
    for owner in applier.owners:
        testbed.kubectl_run(
            "delete",
            "namespaces,clusterroles,customresourcedefinitions",
            "-l",
            f"{OWNER_LABEL}={owner}",
            "--wait=false",
            "--ignore-not-found",
            check=False,
        )


def audit_events(testbed: LocalTestbed, offset: int) -> list[dict[str, t.Any]]:
    """The module's requests since OFFSET, one event each: a watch is logged at ResponseStarted
    and again at ResponseComplete, so events are counted by auditID."""
    with testbed.audit_log.open("rb") as stream:
        stream.seek(offset)
        lines = stream.read().splitlines()
    events: dict[str, dict[str, t.Any]] = {}
    for event in map(json.loads, lines):
        if event.get("userAgent", "").startswith(USER_AGENT):
            events.setdefault(event["auditID"], event)
    return list(events.values())


def owner_lists(events: list[dict[str, t.Any]], owner: str) -> list[str]:
    """The resources listed with OWNER's label selector (pruning's LISTs), in order."""
    selector = f"labelSelector={OWNER_LABEL.replace('/', '%2F')}%3D{owner}"
    return [e["objectRef"]["resource"] for e in events if e["verb"] == "list" and selector in e["requestURI"]]


def test_apply_creates_then_changes_nothing(
    apply: Applier, namespace: t.Callable[..., str], testbed: LocalTestbed
) -> None:
    user_ns = namespace("user")
    ns, owner, cluster_name = unique("zt"), unique("o"), unique("zt-reader")
    objects = stack(ns, user_ns, cluster_name)
    args: dict[str, t.Any] = {
        "owner": owner,
        "objects": objects,
        "secrets": secret_specs(ns),
        "secret_values": {"client_secret": CLIENT_SECRET},
    }
    everything = [
        *objects,
        *(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": s["name"], "namespace": ns}}
            for s in secret_specs(ns)
        ),
    ]
    count = len(everything)

    offset = testbed.audit_log.stat().st_size
    first = apply(**args)
    assert first.get("failed") is not True, first.get("msg")
    assert first["changed"] is True and first["counts"] == {"created": count, "configured": 0, "unchanged": 0}
    events = audit_events(testbed, offset)
    assert len(events) == first["requests"]
    # Pruning: one LIST per kind the collection knows (and the API server serves), none of them
    # of Namespaces (the engine's first Namespace LIST serves), each with the owner's selector.
    prune_lists = owner_lists(events, owner)
    assert len(prune_lists) == len(set(prune_lists)) and "namespaces" not in prune_lists, prune_lists
    assert {"configmaps", "secrets", "ingresses", "clusterroles"} <= set(prune_lists), prune_lists
    assert first["requests"] - len(prune_lists) <= 2 * count, first["requests"]
    assert first["pruned"] == [] and first["unused_namespaces"] == []
    assert [d["name"] for d in first["waited"]["deployments"]] == ["app"]
    watch = next(
        i for i, e in enumerate(events) if e["verb"] == "watch" and e["objectRef"]["resource"] == "deployments"
    )
    ingress = next(
        i for i, e in enumerate(events) if e["verb"] == "patch" and e["objectRef"]["resource"] == "ingresses"
    )
    assert watch < ingress, "the Ingress is applied after the Deployment rolled out"
    state = apply.get(everything)
    assert len(state) == count
    # Marked: everything the collection created, including the ConfigMap in the user's namespace
    # and the ClusterRole (marked by the -owner field manager after creation).
    assert {k for k, o in state.items() if o["metadata"].get("labels", {}).get(OWNER_LABEL) != owner} == set()
    assert OWNER_LABEL not in (testbed.kubectl_run("get", "namespace", user_ns, "-o", "json").stdout)
    deployed = state[("Deployment", ns, "app")]
    checksum = deployed["spec"]["template"]["metadata"]["annotations"]["zerotrust.aks/secrets-checksum"]
    assert len(checksum) == 64
    assert {s["name"]: s["generated"] for s in first["secrets"]} == {"oauth": False, "cookie": True}

    offset = testbed.audit_log.stat().st_size
    second = apply(**args)
    assert second["changed"] is False, second["objects"]
    assert second["counts"] == {"created": 0, "configured": 0, "unchanged": count}
    after = apply.get(everything)
    changed_versions = [
        k for k in state if state[k]["metadata"]["resourceVersion"] != after[k]["metadata"]["resourceVersion"]
    ]
    # The Deployment's status may still settle (kwok), but its spec must not have moved.
    assert [k for k in changed_versions if k[0] != "Deployment"] == []
    key = ("Deployment", ns, "app")
    assert state[key]["metadata"]["generation"] == after[key]["metadata"]["generation"]
    events = audit_events(testbed, offset)
    assert len(events) == second["requests"], sorted({(e["verb"], e["requestURI"]) for e in events})
    assert (second["requests"] - len(owner_lists(events, owner))) / count <= 1.2, (second["requests"], count)
    assert {e["verb"] for e in events} <= {"get", "list", "patch"}
    assert not any(
        e["verb"] == "get" and e["objectRef"].get("resource") != "secrets"
        for e in events
        if e.get("objectRef", {}).get("name")
    )

    # Check mode and diff after the converge: nothing would change.
    check = apply(check=True, diff=True, **args)
    assert check["changed"] is False, [o for o in check["objects"] if o["action"] != "unchanged"]


def test_diff_and_verbose_output_never_show_a_secret_value(
    apply: Applier, namespace: t.Callable[..., str], testbed: LocalTestbed
) -> None:
    user_ns = namespace("user")
    ns, owner = unique("zt"), unique("o")
    objects = stack(ns, user_ns, unique("zt-reader"), configmaps=1)
    args: dict[str, t.Any] = {
        "owner": owner,
        "objects": objects,
        "secrets": secret_specs(ns),
        "secret_values": {"client_secret": CLIENT_SECRET},
    }
    first = apply(verbosity=3, diff=True, **args)
    assert first["changed"] is True
    stored = json.loads(testbed.kubectl_run("get", "secret", "-n", ns, "cookie", "-o", "json").stdout)
    cookie = stored["data"]["cookie-secret"]
    new_value = "rotated-client-secret-77aa"
    objects[-1]["data"] = {"changed": "yes"}
    changed = apply(verbosity=3, diff=True, **dict(args, objects=objects, secret_values={"client_secret": new_value}))
    assert changed["changed"] is True
    actions = {(o["kind"], o["name"]): o["action"] for o in changed["objects"]}
    assert actions[("Secret", "oauth")] == "configured" and actions[("Secret", "cookie")] == "unchanged"
    assert actions[("ConfigMap", "cm-0")] == "configured"
    assert actions[("Deployment", "app")] == "configured", "a changed Secret rolls the Deployment that reads it"
    assert apply.last is not None
    output = apply.last.output + json.dumps(changed)
    for value in (CLIENT_SECRET, new_value, cookie):
        assert value not in output
    for value in (CLIENT_SECRET, new_value):
        assert base64.b64encode(value.encode()).decode() not in output
    assert base64.b64decode(cookie).decode() not in output
    assert "client-secret" in output and "fingerprint" in output  # the diff shows keys, not values
    assert 'changed: "yes"' in output or "changed: 'yes'" in output or "changed: yes" in output


def test_check_mode_on_a_new_namespace_writes_nothing(apply: Applier, testbed: LocalTestbed) -> None:
    ns = unique("zt-check")
    objects = stack(ns, ns, unique("zt-reader"), configmaps=3)
    offset = testbed.audit_log.stat().st_size
    result = apply(
        check=True, owner=unique("o"), objects=objects, secrets=secret_specs(ns), secret_values={"client_secret": "x"}
    )
    assert result["changed"] is True
    actions = {(o["kind"], o["name"]): o["action"] for o in result["objects"]}
    assert set(actions.values()) == {"created"}
    assert testbed.kubectl_run("get", "namespace", ns, check=False).returncode != 0
    verbs = {e["verb"] for e in audit_events(testbed, offset)}
    assert "create" not in verbs and "delete" not in verbs
    assert all("dryRun=All" in e["requestURI"] for e in audit_events(testbed, offset) if e["verb"] == "patch"), (
        "only the ClusterRole may be dry-run applied"
    )


def test_rollout_timeout_names_the_deployment(apply: Applier) -> None:
    ns = unique("zt-wait")
    stuck = deployment(ns, "stuck", nodeSelector={"zerotrust.aks/no-such-node": "true"})
    stuck["spec"]["template"]["spec"]["containers"][0].pop("envFrom")
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, stuck]
    owner = unique("o")
    result = apply(owner=owner, objects=objects, wait_timeout=5)
    assert result["failed"] is True
    assert result["msg"].startswith("timed out after 5 s waiting for 1 Deployment(s) to roll out: ")
    assert (
        f"Deployment {ns}/stuck: 1/1 updated, 0 available; Available=False MinimumReplicasUnavailable" in result["msg"]
    )
    assert [(o["kind"], o["action"]) for o in result["objects"]] == [
        ("Namespace", "created"),
        ("Deployment", "created"),
    ]
    gone = apply(owner=owner, objects=objects, state="absent")
    assert gone.get("failed") is not True, gone.get("msg")


def test_custom_resource_waits_for_its_crd(apply: Applier) -> None:
    group = f"{unique('w')}.zerotrust.example"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Cluster",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    owner = unique("o")
    check = apply(check=True, owner=owner, objects=[widget, crd])
    assert check["counts"]["created"] == 2, check
    result = apply(owner=owner, objects=[widget, crd])
    assert result.get("failed") is not True, result.get("msg")
    assert [o["action"] for o in result["objects"]] == ["created", "created"]
    again = apply(owner=owner, objects=[widget, crd])
    assert again["changed"] is False
    kept = apply(owner=owner, objects=[widget, crd], state="absent")
    assert {d["kind"] for d in kept["deleted"]} == {"Widget"}, "teardown keeps CRDs unless asked"
    assert [(s["kind"], s["name"]) for s in kept["skipped"]] == [("CustomResourceDefinition", f"widgets.{group}")]
    gone = apply(owner=owner, objects=[widget, crd], state="absent", delete_crds=True)
    assert {d["kind"] for d in gone["deleted"]} == {"CustomResourceDefinition"}
    stray = dict(widget, apiVersion=f"never-{group}/v1")
    missing = apply(owner=owner, objects=[stray])
    assert missing["failed"] is True and "its CRD is missing" in missing["msg"] and missing["requests"] == 3


def widget_crd(group: str, if_absent: bool = True) -> dict[str, t.Any]:
    metadata: dict[str, t.Any] = {"name": f"widgets.{group}"}
    if if_absent:
        metadata["annotations"] = {"zerotrust.aks/apply": "if-absent"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Cluster",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def test_an_if_absent_crd_is_created_once_and_then_applied_idempotently(apply: Applier, testbed: LocalTestbed) -> None:
    group = f"{unique('ia')}.zerotrust.example"
    owner = unique("o")
    crd = widget_crd(group)
    first = apply(owner=owner, objects=[crd])
    assert first.get("failed") is not True, first.get("msg")
    assert [o["action"] for o in first["objects"]] == ["created"] and first["skipped"] == []
    stored = json.loads(testbed.kubectl_run("get", "crd", f"widgets.{group}", "-o", "json").stdout)
    assert stored["metadata"]["labels"][OWNER_LABEL] == owner
    again = apply(owner=owner, objects=[crd])
    assert again["changed"] is False, again["objects"]
    assert apply(owner=owner, objects=[crd], state="absent", delete_crds=True)["deleted"] == [
        {"kind": "CustomResourceDefinition", "namespace": "", "name": f"widgets.{group}"}
    ]


def test_an_if_absent_crd_somebody_else_made_is_left_alone(
    apply: Applier, testbed: LocalTestbed, tmp_path: Path
) -> None:
    group = f"{unique('theirs')}.zerotrust.example"
    theirs = widget_crd(group, if_absent=False)
    theirs["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
    ]
    (tmp_path / "theirs.json").write_text(json.dumps(theirs))
    testbed.kubectl_run("create", "-f", str(tmp_path / "theirs.json"))
    try:
        before = json.loads(testbed.kubectl_run("get", "crd", f"widgets.{group}", "-o", "json").stdout)
        owner = unique("o")
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
        result = apply(owner=owner, objects=[widget_crd(group), widget])
        assert result.get("failed") is not True, result.get("msg")
        assert [(o["kind"], o["action"]) for o in result["objects"]] == [
            ("CustomResourceDefinition", "unchanged"),
            ("Widget", "created"),
        ]
        assert [s["name"] for s in result["skipped"]] == [f"widgets.{group}"]
        after = json.loads(testbed.kubectl_run("get", "crd", f"widgets.{group}", "-o", "json").stdout)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "not a field changed"
        assert OWNER_LABEL not in (after["metadata"].get("labels") or {})
        gone = apply(owner=owner, objects=[widget_crd(group), widget], state="absent", delete_crds=True)
        assert [d["kind"] for d in gone["deleted"]] == ["Widget"], "never anybody else's CRD"
    finally:
        testbed.kubectl_run("delete", "crd", f"widgets.{group}", check=False)


def test_prune_deletes_owned_objects_no_longer_applied_and_nothing_else(
    apply: Applier, namespace: t.Callable[..., str], testbed: LocalTestbed
) -> None:
    user_ns = namespace("user")
    ns, owner = unique("zt"), unique("o")

    def configmap(namespace: str, name: str) -> dict[str, t.Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}

    def configmaps(namespace: str) -> list[str]:
        return testbed.kubectl_run("get", "configmap", "-n", namespace, "-o", "name").stdout.split()

    stack_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    everything = [stack_ns, configmap(ns, "keep"), configmap(ns, "drop"), configmap(user_ns, "drop")]
    first = apply(owner=owner, objects=everything, secrets=secret_specs(ns)[1:])
    assert first.get("failed") is not True, first.get("msg")
    # Unlabelled objects of the same kind: the user's in the user's namespace, and one someone
    # else made in the stack's namespace.
    testbed.kubectl_run("create", "configmap", "mine", "-n", user_ns)
    testbed.kubectl_run("create", "configmap", "theirs", "-n", ns)
    fewer = [stack_ns, configmap(ns, "keep")]
    gone = {("ConfigMap", ns, "drop"), ("ConfigMap", user_ns, "drop"), ("Secret", ns, "cookie")}

    check = apply(check=True, diff=True, owner=owner, objects=fewer)
    assert check.get("failed") is not True, check.get("msg")
    assert check["changed"] is True and {(p["kind"], p["namespace"], p["name"]) for p in check["pruned"]} == gone
    assert apply.last is not None and f"ConfigMap {user_ns}/drop (pruned" in apply.last.output
    assert "configmap/drop" in configmaps(ns) and "configmap/drop" in configmaps(user_ns), "check mode deleted"

    offset = testbed.audit_log.stat().st_size
    pruned = apply(owner=owner, objects=fewer)
    assert pruned.get("failed") is not True, pruned.get("msg")
    assert pruned["changed"] is True and pruned["counts"] == {"created": 0, "configured": 0, "unchanged": 2}
    assert {(p["kind"], p["namespace"], p["name"]) for p in pruned["pruned"]} == gone
    events = audit_events(testbed, offset)
    assert sum(1 for e in events if e["verb"] == "delete") == 3
    assert not any(e["verb"] == "get" for e in events if e.get("objectRef", {}).get("name")), "no per-object GET"
    assert sorted(configmaps(ns)) == ["configmap/keep", "configmap/kube-root-ca.crt", "configmap/theirs"]
    assert sorted(configmaps(user_ns)) == ["configmap/kube-root-ca.crt", "configmap/mine"]

    again = apply(owner=owner, objects=fewer)
    assert again["changed"] is False and again["pruned"] == []

    # Nothing left to apply: the owned Namespace stays (with what it holds that is not owned),
    # reported with a warning; what the collection made in it goes.
    emptied = apply(owner=owner, objects=[])
    assert emptied.get("failed") is not True, emptied.get("msg")
    assert emptied["pruned"] == [{"kind": "ConfigMap", "namespace": ns, "name": "keep"}]
    assert emptied["unused_namespaces"] == [ns]
    assert any(f"Namespace(s) {ns} carry" in w for w in emptied.get("warnings", [])), emptied.get("warnings")
    assert testbed.kubectl_run("get", "namespace", ns).returncode == 0
    assert "configmap/theirs" in configmaps(ns)


def test_absent_deletes_only_owned_objects(
    apply: Applier, namespace: t.Callable[..., str], testbed: LocalTestbed
) -> None:
    user_ns = namespace("user")
    ns, owner, cluster_name = unique("zt"), unique("o"), unique("zt-reader")
    objects = stack(ns, user_ns, cluster_name, configmaps=2)
    args: dict[str, t.Any] = {
        "owner": owner,
        "objects": objects,
        "secrets": secret_specs(ns),
        "secret_values": {"client_secret": CLIENT_SECRET},
    }
    first = apply(**args)
    assert first.get("failed") is not True, first.get("msg")
    # Someone else's object with the collection's part-of label, in the user's namespace.
    testbed.kubectl_run("create", "configmap", "unrelated", "-n", user_ns)
    testbed.kubectl_run("label", "configmap", "unrelated", "-n", user_ns, "app.kubernetes.io/part-of=zerotrust-aks")
    # An object of another stack instance.
    testbed.kubectl_run("create", "configmap", "other-stack", "-n", user_ns)
    testbed.kubectl_run("label", "configmap", "other-stack", "-n", user_ns, f"{OWNER_LABEL}=someone-else")

    check = apply(check=True, state="absent", owner=owner, objects=objects)
    assert check["changed"] is True and testbed.kubectl_run("get", "namespace", ns).returncode == 0

    gone = apply(state="absent", owner=owner, objects=objects)
    assert gone.get("failed") is not True, gone.get("msg")
    deleted = {(d["kind"], d["namespace"], d["name"]) for d in gone["deleted"]}
    assert ("Namespace", "", ns) in deleted and ("ClusterRole", "", cluster_name) in deleted
    assert ("ConfigMap", user_ns, "in-user-ns") in deleted and ("Secret", ns, "oauth") in deleted
    assert testbed.kubectl_run("get", "namespace", ns, check=False).returncode != 0
    assert testbed.kubectl_run("get", "clusterrole", cluster_name, check=False).returncode != 0
    survivors = testbed.kubectl_run("get", "configmap", "-n", user_ns, "-o", "name").stdout.split()
    assert "configmap/unrelated" in survivors and "configmap/other-stack" in survivors
    assert "configmap/in-user-ns" not in survivors
    assert testbed.kubectl_run("get", "namespace", user_ns).returncode == 0

    again = apply(state="absent", owner=owner, objects=objects)
    assert again["changed"] is False and again["deleted"] == []


def test_a_mutating_webhook_configuration_is_applied_first_and_its_ca_bundle_waited_for(
    apply: Applier, testbed: LocalTestbed
) -> None:
    """cert-manager's cainjector writes the caBundle of its MutatingWebhookConfiguration only once the
    configuration exists; the objects deferred with it must wait for that. Here the test writes it,
    a few seconds after the engine applied the configuration. The webhook matches a resource nobody
    has (and would be ignored if called), so the configuration admits nothing for real."""
    owner, ns = unique("o"), unique("zt")
    name = unique("zt-mutating")
    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "annotations": {"cert-manager.io/inject-ca-from-secret": f"{ns}/webhook-ca"}},
        "webhooks": [
            {
                "name": "noop.zerotrust-aks.test",
                "clientConfig": {"service": {"name": "webhook", "namespace": ns, "path": "/mutate"}},
                "rules": [
                    {
                        "apiGroups": ["zerotrust-aks.test"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["nothings"],
                    }
                ],
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
            }
        ],
    }
    deferred = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-the-ca-bundle", "namespace": ns}}
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, configuration, deferred]
    ca_bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n")
    patch = json.dumps([{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": ca_bundle.decode()}])
    delay = 3.0
    written: list[float] = []

    def cainjector() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if testbed.kubectl_run("get", "mutatingwebhookconfiguration", name, check=False).returncode == 0:
                time.sleep(delay)
                testbed.kubectl_run("patch", "mutatingwebhookconfiguration", name, "--type=json", "-p", patch)
                written.append(time.monotonic())
                return
            time.sleep(0.2)

    writer = threading.Thread(target=cainjector, daemon=True)
    offset = testbed.audit_log.stat().st_size
    writer.start()
    try:
        result = apply(
            owner=owner,
            objects=objects,
            apply_after_rollout=["MutatingWebhookConfiguration", "ConfigMap"],
            prune=False,
        )
        writer.join(timeout=130)
        assert result.get("failed") is not True, result.get("msg")
        assert written, "the test never wrote the CA bundle"
        assert result["counts"] == {"created": 3, "configured": 0, "unchanged": 0}
        waited = result["waited"]["webhooks"]
        assert [(w["kind"], w["name"]) for w in waited] == [("MutatingWebhookConfiguration", name)]
        assert waited[0]["seconds"] >= delay - 1, waited

        events = audit_events(testbed, offset)
        assert len(events) == result["requests"]
        order = [
            (e["verb"], e["objectRef"]["resource"])
            for e in events
            if e["verb"] in ("patch", "watch") and e["objectRef"].get("resource") != "namespaces"
        ]
        assert order[:3] == [
            ("patch", "mutatingwebhookconfigurations"),  # the configuration
            ("patch", "mutatingwebhookconfigurations"),  # its ownership label (created by this run)
            ("watch", "mutatingwebhookconfigurations"),
        ], order
        assert order[3:] == [("patch", "configmaps")], order
        # The ConfigMap was sent after the CA bundle was written (by the test, not the module).
        with testbed.audit_log.open("rb") as stream:
            stream.seek(offset)
            everything = [json.loads(line) for line in stream.read().splitlines()]
        bundle = next(
            e["stageTimestamp"]
            for e in everything
            if e["verb"] == "patch"
            and e["objectRef"].get("resource") == "mutatingwebhookconfigurations"
            and not e.get("userAgent", "").startswith(USER_AGENT)
            and e.get("stage") == "ResponseComplete"
        )
        configmap = next(
            e["requestReceivedTimestamp"]
            for e in events
            if e["verb"] == "patch" and e["objectRef"].get("resource") == "configmaps"
        )
        assert configmap > bundle, (configmap, bundle)
    finally:
        testbed.kubectl_run("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def test_unreachable_cluster_messages_name_the_kubeconfig(apply: Applier, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    env = {k: v for k, v in apply.env.items() if not k.startswith("K8S_AUTH_")}
    env["KUBECONFIG"] = str(missing)
    result = apply(env=env, owner="o", objects=[{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}])
    assert result["failed"] is True
    assert f"kubeconfig {missing} (from KUBECONFIG) does not exist" in result["msg"]

    wrong = tmp_path / "wrong-context"
    wrong.write_text(apply.testbed.kubeconfig.read_text())
    result = apply(owner="o", kubeconfig=str(wrong), context="prod", objects=[])
    assert result["msg"].startswith(
        f"cannot configure the Kubernetes connection: kubeconfig {wrong}, context 'prod': no such context"
    )
