# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for who-may-sign-in decisions of entra_application (app roles, assignments, federated
credentials) and the network-policy warning of aks_keyvault_addon."""

from __future__ import annotations

import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils import _aks_addon as aks
from ansible_collections.zerotrust.aks.plugins.module_utils import _entra_access as access

USER = {"value": "colors.user", "display_name": "Colors user", "description": "Signs in"}
ADMIN = {"value": "colors.admin", "display_name": "Colors admin", "description": "Administers"}
FOREIGN: dict[str, t.Any] = {
    "allowedMemberTypes": ["User"],
    "description": "portal",
    "displayName": "Auditor",
    "id": "0d6f2f64-1c5e-4d8e-9a3b-2b7c9d0e1f23",
    "isEnabled": True,
    "origin": "Application",
    "value": "colors.auditor",
}
FOREIGN_WRITABLE = {k: v for k, v in FOREIGN.items() if k != "origin"}
GROUP = "3f0c8a56-6a3e-4f39-9d5b-1f1b7e0c2d4a"
OTHER = "7b2e9d14-0c55-4a8e-b3f1-5e6d7c8b9a01"


def graph_role(spec: dict[str, t.Any], enabled: bool = True) -> dict[str, t.Any]:
    return {
        "allowedMemberTypes": ["User"],
        "description": spec["description"],
        "displayName": spec["display_name"],
        "id": access.app_role_id(spec["value"]),
        "isEnabled": enabled,
        "value": spec["value"],
    }


def test_app_role_id_is_stable_and_distinct() -> None:
    assert access.app_role_id("colors.user") == access.app_role_id("colors.user")
    assert access.app_role_id("colors.user") != access.app_role_id("colors.admin")
    assert access.is_collection_role(graph_role(USER))
    assert not access.is_collection_role(FOREIGN)


def test_new_roles_are_declared_in_one_patch_before_assignments() -> None:
    plan = access.plan_app_roles([FOREIGN], [USER])
    assert plan.first is not None and plan.last is None
    assert [r["value"] for r in plan.first] == ["colors.auditor", "colors.user"]
    # A role the collection did not make is sent back unchanged, without the read-only origin.
    assert plan.first[0] == FOREIGN_WRITABLE
    assert plan.declared_ids == {"colors.user": access.app_role_id("colors.user")}


def test_nothing_to_do_when_roles_match_in_any_order() -> None:
    plan = access.plan_app_roles([graph_role(USER), FOREIGN], [USER])
    assert plan.first is None and plan.last is None


def test_an_existing_role_keeps_its_id_and_gets_new_texts() -> None:
    made_elsewhere = dict(graph_role(USER), id="11111111-2222-3333-4444-555555555555", description="old")
    plan = access.plan_app_roles([made_elsewhere], [USER])
    assert plan.declared_ids["colors.user"] == "11111111-2222-3333-4444-555555555555"
    assert plan.first is not None and plan.first[0]["description"] == "Signs in"


def test_a_retired_collection_role_is_disabled_first_then_removed() -> None:
    plan = access.plan_app_roles([graph_role(USER), graph_role(ADMIN), FOREIGN], [USER])
    assert [r["value"] for r in plan.retired] == ["colors.admin"]
    assert plan.first is not None and plan.last is not None
    assert [(r["value"], r["isEnabled"]) for r in plan.first if r["value"] == "colors.admin"] == [
        ("colors.admin", False)
    ]
    assert [r["value"] for r in plan.last] == ["colors.auditor", "colors.user"]
    assert not any("origin" in r for r in [*plan.first, *plan.last])


def test_an_already_disabled_retired_role_is_only_removed() -> None:
    plan = access.plan_app_roles([graph_role(USER), graph_role(ADMIN, enabled=False)], [USER])
    assert plan.first is None
    assert plan.last is not None and [r["value"] for r in plan.last] == ["colors.user"]


def test_a_foreign_role_is_never_retired() -> None:
    plan = access.plan_app_roles([FOREIGN], [])
    assert plan.retired == [] and plan.first is None and plan.last is None


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ([dict(USER, value="has space")], "value must be"),
        ([dict(USER, value=".dot")], "value must be"),
        ([dict(USER, value="a" * 121)], "value must be"),
        ([dict(USER, value="a,b")], "value must be"),
        ([USER, USER], "appears twice"),
        ([dict(USER, display_name=" ")], "display_name must not be empty"),
        ([dict(USER, allowed_member_types=["Robot"])], "allowed_member_types"),
    ],
)
def test_app_role_errors(roles: list[dict[str, t.Any]], message: str) -> None:
    assert any(message in error for error in access.app_role_errors(roles))


def test_app_role_errors_accept_the_default_role() -> None:
    assert access.app_role_errors([USER, ADMIN]) == []


def assignment(principal: str, role_id: str, assignment_id: str = "a1") -> dict[str, str]:
    return {"id": assignment_id, "principalId": principal, "appRoleId": role_id}


def test_only_recorded_assignments_to_managed_roles_are_removed() -> None:
    user_id = access.app_role_id("colors.user")
    existing = [
        assignment(OTHER, user_id, "gone"),
        assignment(OTHER, FOREIGN["id"], "foreign-role"),
        assignment(GROUP.upper(), user_id, "kept"),
    ]
    plan = access.plan_assignments(
        existing,
        [{"principal_id": GROUP, "role": "colors.user"}, {"principal_id": OTHER, "role": "colors.auditor"}],
        role_ids={"colors.user": user_id, "colors.auditor": FOREIGN["id"]},
        managed_role_ids=[user_id],
        recorded={"gone", "kept", "foreign-role"},
    )
    assert plan.add == []
    assert [a["id"] for a in plan.remove] == ["gone"]
    assert plan.foreign == [] and plan.foreign_unwanted == []


def test_an_assignment_made_by_hand_is_never_removed() -> None:
    user_id = access.app_role_id("colors.user")
    by_hand = assignment(OTHER, user_id, "by-hand")
    listed = assignment(GROUP, user_id, "listed-by-hand")
    plan = access.plan_assignments(
        [by_hand, listed],
        [{"principal_id": GROUP, "role": "colors.user"}],
        role_ids={"colors.user": user_id},
        managed_role_ids=[user_id],
        recorded=set(),
    )
    # The listed one satisfies its entry (nothing added) and stays unrecorded; the other stays too.
    assert plan.add == [] and plan.remove == []
    assert plan.foreign == [by_hand, listed]
    assert plan.foreign_unwanted == [by_hand]


def test_missing_assignments_are_added() -> None:
    user_id = access.app_role_id("colors.user")
    plan = access.plan_assignments(
        [],
        [{"principal_id": GROUP, "role": "colors.user"}, {"principal_id": GROUP, "role": "colors.user"}],
        role_ids={"colors.user": user_id},
        managed_role_ids=[user_id],
        recorded=(),
    )
    assert plan.add == [{"principalId": GROUP, "appRoleId": user_id}]
    assert plan.remove == []


def test_recorded_ids_are_read_from_the_prefixed_tags_only() -> None:
    tags = ["WindowsAzureActiveDirectoryIntegratedApp", access.assignment_tag("a1"), "zerotrust.aks/other=x"]
    assert access.recorded_assignment_ids(tags) == {"a1"}


def test_planned_tags_keep_foreign_tags_and_drop_removed_and_vanished_ids() -> None:
    user_id = access.app_role_id("colors.user")
    alive, removed = assignment(GROUP, user_id, "alive"), assignment(OTHER, user_id, "removed")
    tags = [
        "HideApp",
        access.assignment_tag("alive"),
        access.assignment_tag("removed"),
        access.assignment_tag("deleted-in-the-portal"),
        "team=colors",
    ]
    after = access.planned_tags(tags, existing=[alive, removed], removed=[removed])
    assert after == ["HideApp", access.assignment_tag("alive"), "team=colors"]


def test_a_retired_role_held_by_a_foreign_assignment_is_disabled_not_removed() -> None:
    plan = access.plan_app_roles([graph_role(USER), graph_role(ADMIN), FOREIGN], [USER])
    admin_id = access.app_role_id("colors.admin")
    held = access.held_retired_roles(plan, [assignment(OTHER, admin_id.upper(), "by-hand")])
    assert held == {"colors.admin": 1}
    kept = access.keep_retired_roles(plan, held)
    assert kept.first == plan.first
    # The first PATCH already disabled it: nothing more to send, and it stays, disabled.
    assert kept.last is None
    assert [(r["value"], r.get("isEnabled", True)) for r in kept.final] == [
        ("colors.auditor", True),
        ("colors.user", True),
        ("colors.admin", False),
    ]


def test_a_held_role_already_disabled_needs_no_patch_on_a_rerun() -> None:
    plan = access.plan_app_roles([graph_role(USER), graph_role(ADMIN, enabled=False)], [USER])
    kept = access.keep_retired_roles(plan, {"colors.admin": 1})
    assert kept.first is None and kept.last is None
    assert access.describe_roles(kept.final) == ["colors.admin (disabled)", "colors.user (enabled)"]


def test_of_two_retired_roles_only_the_held_one_stays() -> None:
    other = {"value": "colors.ops", "display_name": "Ops", "description": "Operates"}
    plan = access.plan_app_roles([graph_role(USER), graph_role(ADMIN), graph_role(other)], [USER])
    kept = access.keep_retired_roles(plan, {"colors.admin": 2})
    assert kept.last is not None
    assert sorted(r["value"] for r in kept.last) == ["colors.admin", "colors.user"]


def test_assignments_are_described_as_recorded_foreign_or_new() -> None:
    user_id = access.app_role_id("colors.user")
    values = {user_id: "colors.user"}
    described = access.describe_assignments(
        [
            assignment(GROUP, user_id, "ours"),
            assignment(OTHER, user_id, "theirs"),
            {"principalId": GROUP, "appRoleId": user_id},
        ],
        values,
        {"ours"},
    )
    assert described == [
        f"colors.user: {GROUP} (new)",
        f"colors.user: {GROUP} (recorded)",
        f"colors.user: {OTHER} (foreign)",
    ]


ISSUER = "https://oidc.example.test/tenant/cluster/"
SUBJECT = "system:serviceaccount:oauth2-proxy:oauth2-proxy"


def test_federated_credentials_created_corrected_and_removed_by_prefix() -> None:
    existing = [
        {
            "id": "1",
            "name": "zerotrust-aks-oauth2-proxy",
            "issuer": "https://old/",
            "subject": SUBJECT,
            "audiences": ["api://AzureADTokenExchange"],
        },
        {
            "id": "2",
            "name": "zerotrust-aks-old",
            "issuer": ISSUER,
            "subject": "x",
            "audiences": ["api://AzureADTokenExchange"],
        },
        {
            "id": "3",
            "name": "github-actions",
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": "repo:x",
            "audiences": ["api://AzureADTokenExchange"],
        },
    ]
    wanted = [{"name": "zerotrust-aks-oauth2-proxy", "issuer": ISSUER, "subject": SUBJECT}]
    plan = access.plan_federated_credentials(existing, wanted, prefix="zerotrust-aks")
    assert plan.create == []
    assert plan.update == [(existing[0], {"issuer": ISSUER})]
    assert [c["name"] for c in plan.remove] == ["zerotrust-aks-old"]


def test_no_federated_credential_wanted_removes_only_the_collections() -> None:
    existing = [{"id": "1", "name": "zerotrust-aks-oauth2-proxy"}, {"id": "3", "name": "github-actions"}]
    plan = access.plan_federated_credentials(existing, [], prefix="zerotrust-aks")
    assert [c["id"] for c in plan.remove] == ["1"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "a", "issuer": ISSUER, "subject": SUBJECT}, "name must be"),
        ({"name": "zerotrust-aks x", "issuer": ISSUER, "subject": SUBJECT}, "name must be"),
        ({"name": "zerotrust-aks", "issuer": "http://insecure/", "subject": SUBJECT}, "issuer must be"),
        ({"name": "zerotrust-aks", "issuer": ISSUER, "subject": ""}, "subject must not be empty"),
        ({"name": "zerotrust-aks", "issuer": ISSUER, "subject": SUBJECT, "audiences": ["a", "b"]}, "exactly one"),
    ],
)
def test_federated_credential_errors(item: dict[str, t.Any], message: str) -> None:
    assert any(message in error for error in access.federated_credential_errors(item))


@pytest.mark.parametrize(
    ("profile", "warns"),
    [
        ({"networkPlugin": "azure", "networkPolicy": "cilium"}, False),
        ({"networkPlugin": "azure", "networkPolicy": "calico"}, False),
        ({"networkPlugin": "azure", "networkPolicy": "none"}, True),
        ({"networkPlugin": "kubenet"}, True),
        (None, True),
    ],
)
def test_network_policy_warning(profile: dict[str, str] | None, warns: bool) -> None:
    cluster = {"name": "aks", "properties": {"networkProfile": profile}}
    warning = aks.network_policy_warning(cluster)
    assert bool(warning) is warns
    if warns:
        assert "silently ignored" in warning
    assert aks.outputs(cluster)["network_policy"] == ((profile or {}).get("networkPolicy") or "")
