# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for pruning after state=present against the scripted API of the engine tests:
which objects are listed and deleted, what is reported, and what is never touched. The real
server's side is tests/testbed/test_k8s_apply.py's job."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_apply import EngineError
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import ApiError, Response
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_teardown import kinds_to_list, prune
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import KNOWN_KINDS, OWNER_LABEL
from ansible_collections.zerotrust.aks.tests.unit.plugins.module_utils.test_k8s_apply_engine import (
    CLUSTER_ROLE,
    OWNER,
    FakeApi,
    configmap,
    engine,
    namespace,
)

OWNED = {OWNER_LABEL: OWNER}
SELECTOR = {"labelSelector": f"{OWNER_LABEL}={OWNER}"}
CONFIGMAPS = "/api/v1/configmaps"
SECRETS = "/api/v1/secrets"
CLUSTER_ROLES = "/apis/rbac.authorization.k8s.io/v1/clusterroles"


def item(name: str, namespace: str = "", labels: dict[str, str] | None = None, uid: str = "") -> dict[str, t.Any]:
    metadata: dict[str, t.Any] = {
        "name": name,
        "uid": uid or f"uid-{name}",
        "labels": dict(OWNED if labels is None else labels),
    }
    if namespace:
        metadata["namespace"] = namespace
    return {"metadata": metadata}


def stale_cluster() -> FakeApi:
    """The stack 'colors' applied earlier: namespace colors (kept), namespace old-demo (no longer
    applied), a blog app's Ingress stand-in and TLS copy in the user's namespace blog."""
    api = FakeApi({"colors": OWNED, "old-demo": OWNED, "blog": {}}, lambda path, body: 200)
    api.lists = {
        CONFIGMAPS: [
            item("settings", "colors"),  # desired
            item("settings", "old-demo"),  # owned, no longer applied
            item("blog", "blog"),  # owned, in the user's namespace, no longer applied
            item("user-data", "blog", labels={}),  # the user's (the selector would not return it)
            item("other", "blog", labels={OWNER_LABEL: "someone-else"}),
        ],
        SECRETS: [item("colors-tls", "colors"), item("colors-tls", "blog")],
        CLUSTER_ROLES: [item("reader"), item("old-reader")],
    }
    return api


def desired() -> list[dict[str, t.Any]]:
    return [namespace("colors"), configmap("colors"), CLUSTER_ROLE]


TLS = [{"namespace": "colors", "name": "colors-tls", "data": {"tls.crt": {"value": "x"}, "tls.key": {"value": "y"}}}]


def test_prune_deletes_owned_objects_the_run_no_longer_applies_and_keeps_namespaces() -> None:
    api = stale_cluster()
    run = engine(api, wait=False)
    run.present(desired(), TLS, {})
    applied = len(api.calls)
    prune(run, desired())
    calls = api.calls[applied:]
    # One LIST per served kind, all with the selector; Namespaces not listed again; no GET of an object.
    lists = [c[1] for c in calls if c[0] == "GET"]
    assert lists == [CLUSTER_ROLES, CONFIGMAPS, SECRETS]
    assert all(c[2] == SELECTOR for c in calls if c[0] == "GET")
    deletes = [(c[1], c[3]["preconditions"]["uid"], c[3]["propagationPolicy"]) for c in calls if c[0] == "DELETE"]
    # Reverse apply order: ConfigMaps before ClusterRoles (the Secret sorts after ConfigMap in
    # apply order, so before it here).
    assert deletes == [
        ("/api/v1/namespaces/blog/secrets/colors-tls", "uid-colors-tls", "Background"),
        ("/api/v1/namespaces/old-demo/configmaps/settings", "uid-settings", "Background"),
        ("/api/v1/namespaces/blog/configmaps/blog", "uid-blog", "Background"),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles/old-reader", "uid-old-reader", "Background"),
    ]
    assert run.pruned == [
        {"kind": "Secret", "namespace": "blog", "name": "colors-tls"},
        {"kind": "ConfigMap", "namespace": "old-demo", "name": "settings"},
        {"kind": "ConfigMap", "namespace": "blog", "name": "blog"},
        {"kind": "ClusterRole", "namespace": "", "name": "old-reader"},
    ]
    assert run.unused_namespaces == ["old-demo"]
    assert len(run.warnings) == 1 and "Namespace(s) old-demo carry" in run.warnings[0]
    assert "pruning never deletes a Namespace" in run.warnings[0] and "teardown" in run.warnings[0]
    result = run.result()
    assert result["changed"] is True and result["counts"]["created"] == 0
    assert result["pruned"] == run.pruned and result["unused_namespaces"] == ["old-demo"]


def test_nothing_to_prune_changes_nothing() -> None:
    api = FakeApi({"colors": OWNED}, lambda path, body: 200)
    api.lists = {CONFIGMAPS: [item("settings", "colors")], CLUSTER_ROLES: [item("reader")]}
    run = engine(api)
    run.present(desired(), [], {})
    prune(run, desired())
    assert run.pruned == [] and run.unused_namespaces == [] and run.warnings == []
    assert run.result()["changed"] is False and not any(c[0] == "DELETE" for c in api.calls)


def test_check_mode_reports_what_would_be_pruned_and_deletes_nothing() -> None:
    api = stale_cluster()
    run = engine(api, check_mode=True)
    run.present(desired(), [], {})
    prune(run, desired())
    assert not any(c[0] == "DELETE" for c in api.calls)
    assert {(p["kind"], p["namespace"], p["name"]) for p in run.pruned} == {
        ("Secret", "colors", "colors-tls"),  # no secrets given this time
        ("Secret", "blog", "colors-tls"),
        ("ConfigMap", "blog", "blog"),
        ("ConfigMap", "old-demo", "settings"),
        ("ClusterRole", "", "old-reader"),
    }
    assert run.result()["changed"] is True


def test_diff_mode_names_the_pruned_objects_only() -> None:
    api = FakeApi({"colors": OWNED}, lambda path, body: 200)
    api.lists = {CONFIGMAPS: [dict(item("gone", "colors"), data={"password": "hunter2"})]}
    run = engine(api, diff=True)
    run.present([namespace("colors")], [], {})
    prune(run, [namespace("colors")])
    assert run.result()["diff"][-1] == {
        "before_header": "ConfigMap colors/gone",
        "after_header": "ConfigMap colors/gone (pruned: owned, no longer in the objects)",
        "before": "ConfigMap colors/gone\n",
        "after": "",
    }


def refusing(refuse: dict[tuple[str, str], int], namespaces: dict[str, dict[str, str]]) -> t.Any:
    """A FakeApi that answers REFUSE's (method, path) with its HTTP status."""
    api = FakeApi(namespaces, lambda path, body: 200)
    answer = api.request

    def request(method: str, path: str, **kwargs: t.Any) -> Response:
        status = refuse.get((method, path))
        if status:
            api.calls.append((method, path, dict(kwargs.get("query") or {}), kwargs.get("body")))
            message = f'{path} is forbidden: User "ci" cannot list resource "configmaps" in API group ""'
            body = {"kind": "Status", "reason": "Forbidden", "message": message}
            raise ApiError(method, path, status, json.dumps(body).encode())
        return t.cast(Response, answer(method, path, **kwargs))

    api.request = request
    return api


def test_a_forbidden_list_names_the_kind_and_the_permission() -> None:
    api = refusing({("GET", CONFIGMAPS): 403}, {"colors": OWNED})
    run = engine(api)
    run.present(desired(), [], {})
    with pytest.raises(EngineError) as info:
        prune(run, desired())
    message = str(info.value)
    assert message.startswith(
        f"pruning needs to list the ConfigMap objects labelled {OWNER_LABEL}={OWNER}, and the API server refused: "
        "HTTP 403 Forbidden: "
    )
    assert 'cannot list resource "configmaps"' in message
    assert message.endswith("Grant the permission 'list' on configmaps in all namespaces, or set prune=false")
    assert not any(c[0] == "DELETE" for c in api.calls)


def test_an_object_replaced_or_gone_since_the_list_is_not_reported() -> None:
    api = refusing({("DELETE", "/api/v1/namespaces/colors/configmaps/replaced"): 409}, {"colors": OWNED})
    api.lists = {CONFIGMAPS: [item("replaced", "colors"), item("old", "colors")]}
    run = engine(api)
    run.present([namespace("colors")], [], {})
    prune(run, [namespace("colors")])
    assert run.pruned == [{"kind": "ConfigMap", "namespace": "colors", "name": "old"}]


def test_kinds_to_list_holds_the_collections_kinds_and_those_of_the_objects() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    kinds = kinds_to_list([widget, configmap("colors")])
    assert set(kinds) == {*KNOWN_KINDS, ("example.com/v1", "Widget")}
    assert kinds[0] == ("v1", "Namespace") and kinds[-1][1] == "ValidatingWebhookConfiguration"
    # One entry per kind: the apiVersion the objects use wins.
    old_pdb = {"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"}}
    assert [k for k in kinds_to_list([old_pdb]) if k[1] == "PodDisruptionBudget"] == [
        ("policy/v1beta1", "PodDisruptionBudget")
    ]
