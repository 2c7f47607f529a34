# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the apply engine's request pattern against a scripted API (no server).

The real server's behaviour (managedFields, dry runs, watches) is covered by
tests/testbed/test_k8s_apply.py; here: which requests are sent, with which bodies, and what
is reported from the answers."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_apply import Engine, EngineError, Options
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import ApiError, Response
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_connection import Connection
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_teardown import absent
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import OWNER_LABEL

OWNER = "colors"
DATE = "Sun, 29 Nov 2026 16:00:10 GMT"
OLD = "2026-11-29T15:00:00Z"
NOW = "2026-11-29T16:00:10Z"

DISCOVERY = {
    "/api": {
        "kind": "APIGroupDiscoveryList",
        "items": [
            {
                "metadata": {},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [
                            {"resource": "namespaces", "responseKind": {"kind": "Namespace"}, "scope": "Cluster"},
                            {"resource": "configmaps", "responseKind": {"kind": "ConfigMap"}, "scope": "Namespaced"},
                            {"resource": "secrets", "responseKind": {"kind": "Secret"}, "scope": "Namespaced"},
                        ],
                    }
                ],
            }
        ],
    },
    "/apis": {
        "kind": "APIGroupDiscoveryList",
        "items": [
            {
                "metadata": {"name": "rbac.authorization.k8s.io"},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [
                            {"resource": "clusterroles", "responseKind": {"kind": "ClusterRole"}, "scope": "Cluster"}
                        ],
                    }
                ],
            }
        ],
    },
}


class FakeApi:
    """A scripted API server: discovery, a Namespace list, and PATCH answers from a callback."""

    def __init__(self, namespaces: dict[str, dict[str, str]], patch: t.Callable[[str, dict[str, t.Any]], int]):
        self.conn = Connection(host="https://k8s.test", source="kubeconfig /k, context 'c'")
        self.namespaces = namespaces
        self.patch = patch
        self.calls: list[tuple[str, str, dict[str, t.Any], t.Any]] = []
        self.requests = 0
        self.lists: dict[str, list[dict[str, t.Any]]] = {}

    def request(self, method: str, path: str, *, query: t.Any = None, body: t.Any = None, **_: t.Any) -> Response:
        self.requests += 1
        self.calls.append((method, path, dict(query or {}), body))
        if path in DISCOVERY:
            return Response(200, {}, DISCOVERY[path])
        if method == "GET" and path == "/api/v1/namespaces" and not query:
            items = [{"metadata": {"name": n, "labels": labels}} for n, labels in self.namespaces.items()]
            return Response(200, {}, {"metadata": {"resourceVersion": "100"}, "items": items})
        if method == "GET" and (query or {}).get("labelSelector"):
            return Response(200, {}, {"metadata": {"resourceVersion": "100"}, "items": self.lists.get(path, [])})
        if method == "PATCH":
            status = self.patch(path, body)
            if status >= 400:
                message = f'Secret "x" is invalid: data[k]: Invalid value: "{json.dumps(body)}"'
                raise ApiError(
                    method,
                    path,
                    status,
                    json.dumps({"kind": "Status", "reason": "Invalid", "message": message}).encode(),
                )
            answer = dict(body, metadata=dict(body["metadata"], resourceVersion="50" if status == 200 else "150"))
            answer["metadata"]["managedFields"] = [
                {"manager": query["fieldManager"], "operation": "Apply", "time": OLD}
            ]
            return Response(status, {"Date": DATE}, answer)
        if method == "DELETE":
            return Response(200, {}, {})
        raise ApiError(method, path, 404, b'{"kind":"Status","reason":"NotFound","message":"not found"}')

    def watch(self, *_: t.Any) -> t.Iterator[dict[str, t.Any]]:
        raise AssertionError("no watch expected")

    def writes(self) -> list[tuple[str, str, dict[str, t.Any], t.Any]]:
        return [c for c in self.calls if c[0] in ("PATCH", "DELETE")]


def namespace(name: str) -> dict[str, t.Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(ns: str, name: str = "settings") -> dict[str, t.Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"a": "b"}}


CLUSTER_ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}


def engine(api: FakeApi, **options: t.Any) -> Engine:
    return Engine(api, Options(owner=OWNER, **options))


def test_noop_run_is_discovery_namespace_list_and_one_patch_per_object() -> None:
    api = FakeApi({"colors": {OWNER_LABEL: OWNER}}, lambda path, body: 200)
    run = engine(api)
    run.present([configmap("colors"), namespace("colors"), CLUSTER_ROLE], [], {})
    assert [o["action"] for o in run.objects] == ["unchanged"] * 3
    assert [o["kind"] for o in run.objects] == ["Namespace", "ClusterRole", "ConfigMap"]
    assert run.result()["changed"] is False and api.requests == 3 + 3
    assert all(c[2] == {"fieldManager": "zerotrust-aks", "force": "true"} for c in api.writes())


def test_marker_in_the_body_for_new_namespaces_and_a_second_patch_for_created_cluster_objects() -> None:
    api = FakeApi({"default": {}}, lambda path, body: 201)
    run = engine(api)
    run.present([namespace("colors"), configmap("colors"), configmap("default", "mine"), CLUSTER_ROLE], [], {})
    writes = api.writes()
    bodies = {(c[1], c[2]["fieldManager"]): c[3] for c in writes}
    assert bodies[("/api/v1/namespaces/colors", "zerotrust-aks")]["metadata"]["labels"] == {OWNER_LABEL: OWNER}
    assert bodies[("/api/v1/namespaces/colors/configmaps/settings", "zerotrust-aks")]["metadata"]["labels"] == {
        OWNER_LABEL: OWNER
    }
    # In a namespace the collection did not create, and cluster-scoped: marked after creation only.
    assert "labels" not in bodies[("/api/v1/namespaces/default/configmaps/mine", "zerotrust-aks")]["metadata"]
    assert bodies[("/api/v1/namespaces/default/configmaps/mine", "zerotrust-aks-owner")] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "mine", "namespace": "default", "labels": {OWNER_LABEL: OWNER}},
    }
    assert ("/apis/rbac.authorization.k8s.io/v1/clusterroles/reader", "zerotrust-aks-owner") in bodies
    assert len(writes) == 6 and run.result()["counts"] == {"created": 4, "configured": 0, "unchanged": 0}


def test_pre_existing_object_in_a_user_namespace_is_never_marked() -> None:
    api = FakeApi({"default": {}}, lambda path, body: 200)
    engine(api).present([configmap("default")], [], {})
    assert [c[2]["fieldManager"] for c in api.writes()] == ["zerotrust-aks"]


def test_check_mode_in_a_new_namespace_sends_nothing_but_discovery_and_the_list() -> None:
    api = FakeApi({}, lambda path, body: pytest.fail("no PATCH in check mode for a new namespace"))
    run = engine(api, check_mode=True)
    run.present([namespace("colors"), configmap("colors")], [], {})
    assert [o["action"] for o in run.objects] == ["created", "created"]
    assert api.requests == 3


def test_check_mode_on_an_existing_namespace_dry_runs_and_compares() -> None:
    api = FakeApi({"colors": {}}, lambda path, body: 200)
    run = engine(api, check_mode=True)
    run.present([configmap("colors")], [], {})
    methods = [(c[0], c[2].get("dryRun")) for c in api.calls[3:]]
    assert methods == [("GET", None), ("PATCH", "All")]
    assert run.objects[0]["action"] == "created"  # the GET answered 404


def test_unknown_kind_fails_before_any_write() -> None:
    api = FakeApi({}, lambda path, body: 201)
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(EngineError) as info:
        engine(api).present([namespace("colors"), widget], [], {})
    assert "Widget w: the API server does not serve kind Widget of apiVersion example.com/v1" in str(info.value)
    assert "its CRD is missing" in str(info.value)
    assert api.writes() == []


def test_namespaced_object_without_namespace_fails_before_any_write() -> None:
    api = FakeApi({}, lambda path, body: 201)
    broken = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    with pytest.raises(EngineError, match=r"ConfigMap c: ConfigMap is namespaced; set metadata\.namespace"):
        engine(api).present([broken], [], {})
    assert api.writes() == []


def test_objects_in_a_namespace_nobody_creates_fail_before_any_write() -> None:
    api = FakeApi({"colors": {}}, lambda path, body: 201)
    objects = [namespace("shop"), configmap("shop"), configmap("colors"), configmap("cert-manager")]
    secret = {"namespace": "wiki", "name": "site-tls", "type": "kubernetes.io/tls", "keys": {}}
    with pytest.raises(EngineError) as info:
        engine(api).present(objects, [secret], {})
    message = str(info.value)
    assert "namespace cert-manager does not exist and these objects do not create it" in message
    assert "ConfigMap cert-manager/" in message and "Secret wiki/site-tls" in message
    assert "namespace shop" not in message and "namespace colors" not in message  # created / existing
    assert "Nothing was changed" in message
    assert api.writes() == []


def test_a_refused_secret_is_reported_without_its_value() -> None:
    value = "s3cr3t-client-secret"
    api = FakeApi({"colors": {OWNER_LABEL: OWNER}}, lambda path, body: 422 if "secrets" in path else 201)
    run = engine(api)
    spec = {"namespace": "colors", "name": "oauth", "data": {"client-secret": {"value_from": "cs"}}}
    with pytest.raises(EngineError) as info:
        run.present([namespace("colors"), configmap("colors")], [spec], {"cs": value})
    message = str(info.value)
    assert message.startswith("Secret colors/oauth: HTTP 422 Invalid: ")
    assert value not in message and "czNjcjN0" not in message  # nor its base64 form
    # What was applied before the failure is reported.
    assert [(o["kind"], o["action"]) for o in run.objects] == [("Namespace", "created"), ("ConfigMap", "created")]
    assert run.secrets[0]["keys"] == ["client-secret"] and value not in repr(run.result())


def test_teardown_deletes_only_owned_objects_namespaces_last() -> None:
    api = FakeApi({}, lambda path, body: 200)
    owned = {"labels": {OWNER_LABEL: OWNER}}
    api.lists = {
        "/api/v1/namespaces": [{"metadata": {"name": "colors", "uid": "ns-1", **owned}}],
        "/api/v1/configmaps": [
            {"metadata": {"name": "inside", "namespace": "colors", "uid": "c-1", **owned}},
            {"metadata": {"name": "mine", "namespace": "default", "uid": "c-2", **owned}},
            # The selector would not return this one; the engine checks again anyway.
            {"metadata": {"name": "theirs", "namespace": "default", "uid": "c-3", "labels": {OWNER_LABEL: "x"}}},
        ],
        "/apis/rbac.authorization.k8s.io/v1/clusterroles": [{"metadata": {"name": "reader", "uid": "r-1", **owned}}],
    }
    run = engine(api, wait=False)
    absent(run, [namespace("colors"), configmap("colors"), CLUSTER_ROLE])
    lists = [c for c in api.calls if c[0] == "GET" and c[2]]
    assert all(c[2] == {"labelSelector": f"{OWNER_LABEL}={OWNER}"} for c in lists)
    deletes = [(c[1], c[3]["preconditions"]["uid"], c[3]["propagationPolicy"]) for c in api.writes()]
    assert deletes == [
        ("/api/v1/namespaces/default/configmaps/mine", "c-2", "Background"),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles/reader", "r-1", "Background"),
        ("/api/v1/namespaces/colors", "ns-1", "Background"),
    ]
    assert {"kind": "ConfigMap", "namespace": "colors", "name": "inside"} in run.deleted
    assert not any(d["name"] == "theirs" for d in run.deleted)


def test_teardown_in_check_mode_deletes_nothing() -> None:
    api = FakeApi({}, lambda path, body: 200)
    api.lists = {"/api/v1/namespaces": [{"metadata": {"name": "colors", "uid": "1", "labels": {OWNER_LABEL: OWNER}}}]}
    run = engine(api, check_mode=True)
    absent(run, [namespace("colors")])
    assert api.writes() == [] and run.deleted == [{"kind": "Namespace", "namespace": "", "name": "colors"}]
    assert run.result()["changed"] is True
