# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the apply engine's pure decisions: marker, changed rule, comparisons, messages."""

from __future__ import annotations

import base64
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils import _k8s_rules as rules
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import OWNER_LABEL

OWNER = "colors"
EXISTING = {
    "ours": {OWNER_LABEL: OWNER},
    "theirs": {"team": "x"},
    "other-stack": {OWNER_LABEL: "another"},
}


@pytest.mark.parametrize(
    ("kind", "namespaced", "namespace", "name", "expected"),
    [
        ("Namespace", False, "", "brand-new", True),
        ("Namespace", False, "", "ours", True),
        ("Namespace", False, "", "theirs", False),
        ("Namespace", False, "", "other-stack", False),
        ("ConfigMap", True, "brand-new", "c", True),
        ("ConfigMap", True, "ours", "c", True),
        ("ConfigMap", True, "theirs", "c", False),
        ("ConfigMap", True, "other-stack", "c", False),
        ("ClusterRole", False, "", "r", False),
        ("IngressClass", False, "", "nginx", False),
    ],
)
def test_marker_goes_only_where_the_collection_created_the_namespace(
    kind: str, namespaced: bool, namespace: str, name: str, expected: bool
) -> None:
    assert rules.wants_marker(kind, namespaced, namespace, name, EXISTING, OWNER) is expected


def test_apply_body_sets_or_drops_the_marker_and_server_fields() -> None:
    obj: dict[str, t.Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "n", "labels": {OWNER_LABEL: "forged", "a": "b"}, "uid": "u"},
        "status": {"x": 1},
    }
    marked = rules.apply_body(obj, OWNER, marker=True)
    assert marked["metadata"]["labels"] == {"a": "b", OWNER_LABEL: OWNER}
    assert "uid" not in marked["metadata"] and "status" not in marked
    unmarked = rules.apply_body(obj, OWNER, marker=False)
    assert unmarked["metadata"]["labels"] == {"a": "b"}
    assert obj["metadata"]["labels"][OWNER_LABEL] == "forged", "the input must not be modified"
    bare = rules.apply_body({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}}, OWNER, marker=False)
    assert "labels" not in bare["metadata"]


def test_owner_patch_holds_only_the_marker() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}, "spec": {}}
    assert rules.owner_patch(obj, OWNER) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "n", "labels": {OWNER_LABEL: OWNER}},
    }


def answered(time: str, revision: str, manager: str = "zerotrust-aks") -> dict[str, t.Any]:
    return {
        "metadata": {
            "resourceVersion": revision,
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "time": "2030-01-01T00:00:00Z"},
                {"manager": manager, "operation": "Apply", "time": time},
            ],
        }
    }


DATE = "Sun, 29 Nov 2026 16:00:10 GMT"


@pytest.mark.parametrize(
    ("status", "obj", "expected"),
    [
        (201, {}, rules.CREATED),
        # Our fields were written at this answer and the object is newer than the run's start.
        (200, answered("2026-11-29T16:00:10Z", "500"), rules.CONFIGURED),
        (200, answered("2026-11-29T16:00:09Z", "500"), rules.CONFIGURED),
        # No-op: our manager's time is old (the status writer's time does not count).
        (200, answered("2026-11-29T15:00:00Z", "500"), rules.UNCHANGED),
        # Previous run ended within the second, but nothing was written since the start.
        (200, answered("2026-11-29T16:00:10Z", "100"), rules.UNCHANGED),
        # A controller wrote the status after the start, our fields are old.
        (200, answered("2026-11-29T15:59:00Z", "500"), rules.UNCHANGED),
        # No entry of our manager: cannot tell, so say changed rather than hide a change.
        (200, answered("2026-11-29T16:00:10Z", "500", manager="someone-else"), rules.CONFIGURED),
        (200, answered("2026-11-29T16:00:10Z", "not-a-number"), rules.CONFIGURED),
    ],
)
def test_changed_rule_uses_only_the_answer(status: int, obj: dict[str, t.Any], expected: str) -> None:
    assert rules.apply_action(status, obj, DATE, "zerotrust-aks", start_revision=200) == expected


def test_changed_rule_without_a_date_header_falls_back_to_the_revision() -> None:
    assert rules.apply_action(200, answered("2020-01-01T00:00:00Z", "500"), None, "zerotrust-aks", 200) == "configured"
    assert rules.apply_action(200, answered("2020-01-01T00:00:00Z", "100"), None, "zerotrust-aks", 200) == "unchanged"


def test_normalized_drops_what_the_server_maintains() -> None:
    current = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "uid": "1", "resourceVersion": "5", "managedFields": [], "generation": 2},
        "data": {"a": "b"},
        "status": {},
    }
    dry_run = {"kind": "ConfigMap", "metadata": {"name": "c", "uid": "1", "resourceVersion": "6"}, "data": {"a": "b"}}
    assert rules.normalized(current) == rules.normalized(dry_run)
    assert rules.normalized(None) == {}


SECRET: dict[str, t.Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "s", "namespace": "n"},
    "data": {"password": base64.b64encode(b"hunter2-very-secret").decode()},
    "stringData": {"token": "tok-plain-secret"},
}


def test_secret_summary_shows_keys_and_a_fingerprint_never_values() -> None:
    summary = rules.secret_summary(SECRET)
    assert summary["keys"] == ["password", "token"]
    assert summary["fingerprint"].startswith("sha256:")
    text = repr(summary)
    for value in rules.secret_strings(SECRET):
        assert value not in text


def test_object_errors_never_carry_a_secret_value() -> None:
    message = (
        'Secret "s" is invalid: data[password]: Invalid value: "hunter2-very-secret" '
        f"(base64 {SECRET['data']['password']}), token tok-plain-secret"
    )
    text = rules.object_error(SECRET, 422, "Invalid", message, rules.secret_strings(SECRET))
    assert text.startswith("Secret n/s: HTTP 422 Invalid: Secret")
    assert "hunter2" not in text and "tok-plain" not in text and SECRET["data"]["password"] not in text
    assert text.count("********") == 3


def deployment(generation: int, desired: int, **status: int) -> dict[str, t.Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "colors", "generation": generation},
        "spec": {"replicas": desired},
        "status": status,
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (deployment(1, 2, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=2), True),
        (deployment(2, 2, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=2), False),
        (deployment(1, 2, observedGeneration=1, replicas=3, updatedReplicas=2, availableReplicas=2), False),
        (deployment(1, 2, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=1), False),
        (deployment(1, 0, observedGeneration=1), True),
        (deployment(1, 1), False),
    ],
)
def test_rolled_out(obj: dict[str, t.Any], expected: bool) -> None:
    assert rules.rolled_out(obj) is expected


def test_rollout_state_names_the_deployment_and_its_conditions() -> None:
    obj = deployment(1, 2, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=0)
    obj["status"]["conditions"] = [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "not enough"}
    ]
    assert rules.rollout_state(obj) == (
        "Deployment colors/web: 2/2 updated, 0 available; Available=False MinimumReplicasUnavailable: not enough"
    )
