# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for objects annotated zerotrust.aks/apply: if-absent (the CRDs the collection ships)
and for teardown's CRD policy, against a scripted API: a CRD is created when absent, applied when
this stack made it, and left exactly as it is (and reported) when somebody else did; teardown
deletes the stack's CRDs only when asked, and never anybody else's."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_apply import Engine, Options
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import ApiError, Response
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_connection import Connection
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_teardown import absent, prune
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import OWNER_LABEL

OWNER = "colors"
DATE = "Sun, 29 Nov 2026 16:00:10 GMT"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GATEWAYS_CRD = f"{CRDS}/gateways.gateway.networking.k8s.io"
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
                            {"resource": "namespaces", "responseKind": {"kind": "Namespace"}, "scope": "Cluster"}
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
                "metadata": {"name": "apiextensions.k8s.io"},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [
                            {
                                "resource": "customresourcedefinitions",
                                "responseKind": {"kind": "CustomResourceDefinition"},
                                "scope": "Cluster",
                            }
                        ],
                    }
                ],
            },
            {
                # Served already: the cluster has a Gateway API (its own, or the collection's).
                "metadata": {"name": "gateway.networking.k8s.io"},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [
                            {"resource": "gateways", "responseKind": {"kind": "Gateway"}, "scope": "Namespaced"}
                        ],
                    }
                ],
            },
        ],
    },
}


def crd(labels: dict[str, str] | None = None, annotated: bool = True) -> dict[str, t.Any]:
    metadata: dict[str, t.Any] = {"name": "gateways.gateway.networking.k8s.io"}
    if annotated:
        metadata["annotations"] = {"zerotrust.aks/apply": "if-absent"}
    if labels is not None:
        metadata["labels"] = labels
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": {"kind": "Gateway", "plural": "gateways"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }


def established(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    return dict(obj, status={"conditions": [{"type": "Established", "status": "True"}]})


class Api:
    """A scripted API server holding some objects: GET answers them (or 404), PATCH answers 201
    for an absent object and 200 otherwise, or ``conflict`` (409) to a PATCH without force."""

    def __init__(self, stored: dict[str, dict[str, t.Any]] | None = None, conflict: bool = False) -> None:
        self.conn = Connection(host="https://k8s.test", source="test")
        self.stored = dict(stored or {})
        self.conflict = conflict
        self.calls: list[tuple[str, str, dict[str, t.Any], t.Any]] = []
        self.requests = 0
        self.lists: dict[str, list[dict[str, t.Any]]] = {}

    def request(self, method: str, path: str, *, query: t.Any = None, body: t.Any = None, **_: t.Any) -> Response:
        self.requests += 1
        query = dict(query or {})
        self.calls.append((method, path, query, body))
        if path in DISCOVERY:
            return Response(200, {}, DISCOVERY[path])
        if method == "GET" and path == "/api/v1/namespaces" and not query:
            # The namespace the tests' Gateways live in exists already (the user's edge namespace).
            edge = {"metadata": {"name": "edge", "labels": {}}}
            return Response(200, {}, {"metadata": {"resourceVersion": "100"}, "items": [edge]})
        if method == "GET" and query.get("labelSelector"):
            return Response(200, {}, {"metadata": {"resourceVersion": "100"}, "items": self.lists.get(path, [])})
        if method == "GET" and path in self.stored:
            return Response(200, {}, self.stored[path])
        if method == "PATCH":
            if self.conflict and "force" not in query:
                raise ApiError(method, path, 409, b'{"kind":"Status","reason":"Conflict","message":"conflict"}')
            status = 200 if path in self.stored else 201
            answer = established(dict(body, metadata=dict(body["metadata"], resourceVersion="150")))
            answer["metadata"]["managedFields"] = [
                {"manager": query["fieldManager"], "operation": "Apply", "time": "2026-11-29T16:00:10Z"}
            ]
            return Response(status, {"Date": DATE}, answer)
        if method == "DELETE":
            return Response(200, {}, {})
        raise ApiError(method, path, 404, b'{"kind":"Status","reason":"NotFound","message":"not found"}')

    def watch(self, *_: t.Any) -> t.Iterator[dict[str, t.Any]]:
        raise AssertionError("no watch expected")

    def writes(self) -> list[tuple[str, str, dict[str, t.Any], t.Any]]:
        return [c for c in self.calls if c[0] in ("PATCH", "DELETE")]


def run(api: Api, *objects: dict[str, t.Any], **options: t.Any) -> Engine:
    engine = Engine(api, Options(owner=OWNER, **options))
    engine.present(list(objects), [], {})
    return engine


def test_an_absent_crd_is_created_with_the_ownership_label_and_without_force() -> None:
    api = Api()
    engine = run(api, crd())
    assert [c[:2] for c in api.calls if c[1].startswith(CRDS)] == [("GET", GATEWAYS_CRD), ("PATCH", GATEWAYS_CRD)]
    ((_method, _path, query, body),) = api.writes()
    assert query == {"fieldManager": "zerotrust-aks"}, "never forced over fields somebody else owns"
    assert body["metadata"]["labels"] == {OWNER_LABEL: OWNER}
    assert engine.objects == [
        {"kind": "CustomResourceDefinition", "namespace": "", "name": crd()["metadata"]["name"], "action": "created"}
    ]
    assert engine.skipped == [] and engine.warnings == []


def test_a_crd_this_stack_created_is_applied_as_any_object() -> None:
    api = Api({GATEWAYS_CRD: established(crd({OWNER_LABEL: OWNER}))})
    engine = run(api, crd())
    ((_method, _path, query, body),) = api.writes()
    assert query == {"fieldManager": "zerotrust-aks", "force": "true"}
    assert body["metadata"]["labels"] == {OWNER_LABEL: OWNER}, "the label stays on"
    assert engine.skipped == []


@pytest.mark.parametrize("labels", [None, {OWNER_LABEL: "another-stack"}, {"app.kubernetes.io/managed-by": "aks"}])
def test_a_crd_somebody_else_made_is_left_alone_and_reported(labels: dict[str, str] | None) -> None:
    foreign = established(crd(labels, annotated=False))
    api = Api({GATEWAYS_CRD: foreign})
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "site", "namespace": "edge"},
    }
    engine = run(api, crd(), gateway)
    # Only the Gateway is written (applied, then marked as the stack's: its namespace exists).
    assert {c[1] for c in api.writes()} == {"/apis/gateway.networking.k8s.io/v1/namespaces/edge/gateways/site"}
    assert api.stored[GATEWAYS_CRD] == foreign, "not a byte changed"
    assert engine.skipped == [
        {
            "kind": "CustomResourceDefinition",
            "namespace": "",
            "name": "gateways.gateway.networking.k8s.io",
            "reason": "zerotrust.aks/apply: if-absent; exists and this stack did not create it",
        }
    ]
    (warning,) = engine.warnings
    assert warning.startswith("CustomResourceDefinition gateways.gateway.networking.k8s.io exists and this stack")
    assert f"{OWNER_LABEL}={OWNER}" in warning
    assert engine.objects[0]["action"] == "unchanged"


def test_a_crd_created_by_somebody_else_between_the_read_and_the_write_is_theirs() -> None:
    api = Api(conflict=True)
    engine = run(api, crd())
    assert [c[0] for c in api.writes()] == ["PATCH"], "one attempt, no forced retry"
    (skipped,) = engine.skipped
    assert "was created by somebody else while this run applied it" in skipped["reason"]
    assert engine.result()["changed"] is False


def test_check_mode_reports_what_would_happen_without_writing() -> None:
    api = Api({GATEWAYS_CRD: established(crd(None, annotated=False))})
    engine = run(api, crd(), check_mode=True)
    assert api.writes() == [] and engine.objects[0]["action"] == "unchanged" and len(engine.skipped) == 1
    api = Api()
    engine = run(api, crd(), check_mode=True)
    assert [(c[0], c[2].get("dryRun")) for c in api.writes()] == [("PATCH", "All")]
    assert engine.objects[0]["action"] == "created"


def test_objects_without_the_annotation_are_never_read_first() -> None:
    api = Api({GATEWAYS_CRD: established(crd(None, annotated=False))})
    run(api, crd(None, annotated=False))
    assert not [c for c in api.calls if c[0] == "GET" and c[1] == GATEWAYS_CRD]
    ((_method, _path, query, _body),) = api.writes()
    assert query["force"] == "true"


def owned_crd_listing(api: Api) -> None:
    api.lists = {
        CRDS: [
            {
                "metadata": {
                    "name": "gateways.gateway.networking.k8s.io",
                    "uid": "crd-1",
                    "labels": {OWNER_LABEL: OWNER},
                }
            },
            # The selector would not return it; the engine checks the label again anyway.
            {"metadata": {"name": "httproutes.gateway.networking.k8s.io", "uid": "crd-2", "labels": {}}},
        ]
    }


def test_teardown_keeps_the_crds_it_created_unless_asked() -> None:
    api = Api()
    owned_crd_listing(api)
    engine = Engine(api, Options(owner=OWNER, wait=False))
    absent(engine, [crd()])
    assert api.writes() == [] and engine.deleted == []
    assert engine.skipped == [
        {
            "kind": "CustomResourceDefinition",
            "namespace": "",
            "name": "gateways.gateway.networking.k8s.io",
            "reason": "teardown keeps CustomResourceDefinitions unless delete_crds",
        }
    ]
    (warning,) = engine.warnings
    assert "gateways.gateway.networking.k8s.io" in warning and "zerotrust_aks_teardown_crds" in warning


def test_teardown_deletes_only_its_own_crds_when_asked() -> None:
    api = Api()
    owned_crd_listing(api)
    engine = Engine(api, Options(owner=OWNER, wait=False))
    absent(engine, [crd()], delete_crds=True)
    deletes = [(c[1], c[3]["preconditions"]["uid"]) for c in api.writes()]
    assert deletes == [(GATEWAYS_CRD, "crd-1")]
    assert engine.skipped == [] and engine.warnings == []


def test_pruning_never_deletes_a_crd() -> None:
    api = Api({GATEWAYS_CRD: established(crd({OWNER_LABEL: OWNER}))})
    owned_crd_listing(api)
    engine = run(api)  # the CRD is no longer among the objects
    prune(engine, [])
    assert [c for c in api.writes() if c[0] == "DELETE"] == []
    assert not [c for c in api.calls if c[0] == "GET" and c[1] == CRDS], "CRDs are not even listed"


def test_the_module_passes_delete_crds_on() -> None:
    from ansible_collections.zerotrust.aks.plugins.modules import k8s_apply

    spec = k8s_apply.ARGUMENT_SPEC["delete_crds"]
    assert spec == {"type": "bool", "default": False}
    assert "delete_crds" in json.dumps(k8s_apply.DOCUMENTATION)
