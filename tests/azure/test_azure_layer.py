"""playbooks/azure.yml against the fake Azure (see fake_azure/), run as a user would.

The tests share one fake per module and run in order: bad input, check mode on an empty
subscription, first run (the secure defaults: workload identity reading each secret at secret
scope, an app role with assignment required, one group assigned), re-runs, rotation, recovery of
a soft-deleted secret, then the authorization and identity changes a user makes: assignments
in and out, a retired app role, federated client authentication, a cluster without a network
policy engine.
"""

from __future__ import annotations

import json
import re
import typing as t

import pytest
from fake_azure import FakeAzure
from fake_subscription import (
    CLUSTER_ID,
    DEPLOYER_SECRET,
    GROUP_COLORS,
    GROUP_OPS,
    KEYVAULT,
    RESOURCE_GROUP,
    SECOND_HOST,
    SITE_HOST,
    SUBSCRIPTION,
    USER_ALICE,
)
from observations import (
    app_role_assignments,
    cluster_puts,
    fingerprints,
    role_assignments,
    the_application,
    the_service_principal,
    vault_values,
    writes,
)
from support.playbook import Playbook, PlaybookRun

SECRETS_USER_ROLE = "4633458b-17de-408a-b874-0445c86b69e6"
SECRETS_OFFICER_ROLE = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
VAULT_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/{KEYVAULT}"
)
IDENTITY_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/zerotrust-aks-oauth2-proxy"
)
SUBJECT = "system:serviceaccount:oauth2-proxy:oauth2-proxy"
ALL_SECRETS = ["oauth2-proxy-client-id", "oauth2-proxy-client-secret", "oauth2-proxy-cookie-secret"]
outputs: list[str] = []


def play(
    playbook: Playbook, fake: FakeAzure, *args: str, must_succeed: bool = True
) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    """Run the playbook; return the run and the requests it sent."""
    start = len(fake.log)
    run = playbook(*args, must_succeed=must_succeed)
    outputs.append(run.output)
    return run, fake.log[start:]


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"zerotrust_aks_tenant_id": "not-a-guid"}, "keyvault_tenant_id"),
        ({"zerotrust_aks_subscription_id": "1234"}, "aks_keyvault_addon_subscription_id"),
        ({"zerotrust_aks_keyvault_name": "1-bad--vault-name"}, "keyvault_name"),
        ({"zerotrust_aks_keyvault_name": "kv-"}, "keyvault_name"),
        ({"zerotrust_aks_keyvault_name": "a" * 25}, "keyvault_name"),
        ({"zerotrust_aks_app_role_assignments": [{"principal_id": "group-a", "role": "colors.user"}]}, "principal_id"),
        ({"zerotrust_aks_client_secret_expiry_days": 731}, "entra_app_secret_expiry_days"),
        ({"zerotrust_aks_client_secret_expiry_days": 0}, "entra_app_secret_expiry_days"),
        ({"zerotrust_aks_identity_mode": "pod-identity"}, "zerotrust_aks_identity_mode"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_bad_input_fails_in_preflight_before_any_request(
    azure_playbook: Playbook, fake: FakeAzure, extra: dict[str, t.Any], variable: str
) -> None:
    run, requests = play(azure_playbook, fake, "-e", json.dumps(extra), must_succeed=False)
    assert run.failed == 1
    assert variable in run.output
    # Not one request reached the fake, so certainly no write.
    assert requests == []
    # Only what the test seeded: the cluster and the deployer's roles on the resource group.
    assert [k for k in fake.resources if "/roleassignments/" not in k] == [CLUSTER_ID.lower()]
    assert role_assignments(fake) == []


def test_check_mode_on_an_empty_subscription_writes_nothing(azure_playbook: Playbook, fake: FakeAzure) -> None:
    run, requests = play(azure_playbook, fake, "--check", "--diff")
    assert run.failed == 0
    assert run.changed > 0
    assert writes(requests) == []
    assert fake.applications == {}
    assert fake.vaults == {}


def secret_scope_grants(fake: FakeAzure, principal_id: str) -> list[str]:
    """The secrets (or "<vault>") on which ``principal_id`` holds Key Vault Secrets User."""
    grants = []
    for assignment in role_assignments(fake):
        props = assignment["properties"]
        if props["principalId"] != principal_id or not props["roleDefinitionId"].endswith(SECRETS_USER_ROLE):
            continue
        scope = props["scope"]
        grants.append(scope.rsplit("/secrets/", 1)[1] if "/secrets/" in scope else "<vault>")
    return sorted(grants)


def test_first_run_creates_everything(azure_playbook: Playbook, fake: FakeAzure) -> None:
    before = fake.resource(CLUSTER_ID)
    assert before is not None
    run, requests = play(azure_playbook, fake, "-vvv")
    assert run.failed == 0
    # The AKS update is waited for in a task of its own that reports every poll (the fake answers
    # InProgress once), not inside one silent module run.
    assert re.search(r"FAILED - RETRYING: \[localhost\]: Wait for AKS to finish updating the cluster", run.output)

    app = the_application(fake)
    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["groupMembershipClaims"] == "SecurityGroup"
    # Every host of the model: the site and the protected app.
    assert sorted(app["web"]["redirectUris"]) == sorted(
        [f"https://{SITE_HOST}/oauth2/callback", f"https://{SECOND_HOST}/oauth2/callback"]
    )
    assert [p["appId"] for p in fake.service_principals.values()] == [app["appId"]]
    assert len(app["passwordCredentials"]) == 1
    assert app["passwordCredentials"][0]["displayName"].startswith("zerotrust-aks ")

    # Authorization: the default app role, assignment required, the inventory's group assigned.
    assert [(r["value"], r["isEnabled"], r["allowedMemberTypes"]) for r in app["appRoles"]] == [
        ("colors.user", True, ["User"])
    ]
    role_id = app["appRoles"][0]["id"]
    principal = the_service_principal(fake)
    assert principal["appRoleAssignmentRequired"] is True
    assert app_role_assignments(fake) == [(GROUP_COLORS, role_id)]

    vault = fake.vaults[KEYVAULT]
    assert sorted(vault.secrets) == ALL_SECRETS
    assert vault.secrets["oauth2-proxy-client-id"][-1]["value"] == app["appId"]
    assert (
        vault.secrets["oauth2-proxy-client-secret"][-1]["tags"]["zerotrust-aks-key-id"]
        == (app["passwordCredentials"][0]["keyId"])
    )
    vault_props = fake.resource(VAULT_ID)
    assert vault_props is not None
    assert vault_props["properties"]["enableRbacAuthorization"] is True
    assert vault_props["properties"]["enableSoftDelete"] is True

    cluster = fake.resource(CLUSTER_ID)
    assert cluster is not None
    addon = cluster["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert addon["enabled"] is True
    assert addon["config"] == {"enableSecretRotation": "true", "rotationPollInterval": "2m"}
    # Workload identity (the default) needs the OIDC issuer and the webhook.
    assert cluster["properties"]["oidcIssuerProfile"]["enabled"] is True
    assert cluster["properties"]["securityProfile"]["workloadIdentity"]["enabled"] is True
    issuer = cluster["properties"]["oidcIssuerProfile"]["issuerURL"]
    # Nothing else about the cluster changed.
    for name in ("agentPoolProfiles", "networkProfile", "kubernetesVersion", "enableRBAC", "dnsPrefix"):
        assert cluster["properties"][name] == before["properties"][name], name
    assert cluster["properties"]["addonProfiles"]["azurepolicy"] == before["properties"]["addonProfiles"]["azurepolicy"]
    assert cluster["tags"] == before["tags"]
    assert cluster["identity"] == before["identity"]
    assert len(cluster_puts(requests)) == 1

    # The user-assigned identity trusts exactly the oauth2-proxy ServiceAccount of this cluster...
    identity = fake.resource(IDENTITY_ID)
    assert identity is not None
    credential = fake.resource(f"{IDENTITY_ID}/federatedIdentityCredentials/oauth2-proxy")
    assert credential is not None
    assert credential["properties"] == {
        "issuer": issuer,
        "subject": SUBJECT,
        "audiences": ["api://AzureADTokenExchange"],
    }
    # ...and reads the three secrets, each at secret scope; nothing at vault scope; the add-on
    # identity (shared by every pod on the nodes) reads nothing.
    assert secret_scope_grants(fake, identity["properties"]["principalId"]) == ALL_SECRETS
    # The deploying principal writes the secrets: Key Vault Secrets Officer on the vault, and no more.
    officers = [a for a in role_assignments(fake) if a["properties"]["roleDefinitionId"].endswith(SECRETS_OFFICER_ROLE)]
    assert [(a["properties"]["principalId"], a["properties"]["scope"]) for a in officers] == [
        (fake.deployer_object_id, VAULT_ID)
    ]
    assert len(role_assignments(fake)) == 4
    assert secret_scope_grants(fake, addon["identity"]["objectId"]) == []
    # Secret mode: the app registration trusts no federated credential.
    assert fake.federated_credentials[app["id"]] == []

    assert f"identity_client_id: {identity['properties']['clientId']}" in run.output
    assert f"client_id: {app['appId']}" in run.output
    assert "no network policy engine" not in run.output


def test_second_run_changes_nothing_and_sends_no_cluster_put(azure_playbook: Playbook, fake: FakeAzure) -> None:
    first = fingerprints(outputs[-1])
    run, requests = play(azure_playbook, fake)
    assert run.changed == 0
    assert cluster_puts(requests) == []
    assert writes(requests) == []
    assert fingerprints(run.output) == first


def test_check_mode_after_converging_reports_nothing_to_do(azure_playbook: Playbook, fake: FakeAzure) -> None:
    run, requests = play(azure_playbook, fake, "--check")
    assert run.changed == 0
    assert writes(requests) == []


def test_third_run_makes_no_duplicates(azure_playbook: Playbook, fake: FakeAzure) -> None:
    run, requests = play(azure_playbook, fake)
    assert run.changed == 0
    assert len(fake.applications) == 1
    assert len(fake.service_principals) == 1
    assert len(role_assignments(fake)) == 4
    assert len(the_application(fake)["passwordCredentials"]) == 1
    assert len(the_application(fake)["appRoles"]) == 1
    assert len(app_role_assignments(fake)) == 1
    assert writes(requests) == []


def test_cookie_rotation_changes_only_the_cookie_fingerprint(azure_playbook: Playbook, fake: FakeAzure) -> None:
    before = fingerprints(outputs[-1])
    run, _requests = play(azure_playbook, fake, "-vvv", "-e", "zerotrust_aks_rotate_cookie_secret=true")
    after = fingerprints(run.output)
    assert after["cookie_secret"] != before["cookie_secret"]
    assert after["client_secret"] == before["client_secret"]
    # The new value is kept afterwards.
    run, _requests = play(azure_playbook, fake)
    assert run.changed == 0
    assert fingerprints(run.output) == after


def test_client_secret_rotation_adds_a_secret_and_stores_it(azure_playbook: Playbook, fake: FakeAzure) -> None:
    before = fingerprints(outputs[-1])
    run, requests = play(azure_playbook, fake, "-vvv", "-e", "zerotrust_aks_rotate_client_secret=true")
    after = fingerprints(run.output)
    assert after["client_secret"] != before["client_secret"]
    assert after["cookie_secret"] == before["cookie_secret"]
    app = the_application(fake)
    assert len(app["passwordCredentials"]) == 2
    stored = fake.vaults[KEYVAULT].secrets["oauth2-proxy-client-secret"][-1]
    assert stored["tags"]["zerotrust-aks-key-id"] == app["passwordCredentials"][-1]["keyId"]
    assert cluster_puts(requests) == []


def test_soft_deleted_cookie_secret_is_recovered_not_replaced(azure_playbook: Playbook, fake: FakeAzure) -> None:
    before = fingerprints(outputs[-1])
    vault = fake.vaults[KEYVAULT]
    with fake.lock:
        vault.deleted["oauth2-proxy-cookie-secret"] = vault.secrets.pop("oauth2-proxy-cookie-secret")
    run, requests = play(azure_playbook, fake)
    assert run.failed == 0
    assert "POST /deletedsecrets/oauth2-proxy-cookie-secret/recover" in writes(requests)
    assert "PUT /secrets/oauth2-proxy-cookie-secret" not in writes(requests)
    assert fingerprints(run.output) == before


def test_assignments_follow_the_inventory_and_leave_other_roles_alone(
    azure_playbook: Playbook, fake: FakeAzure
) -> None:
    app = the_application(fake)
    principal = the_service_principal(fake)
    role_id = app["appRoles"][0]["id"]
    # Someone declares a role of their own in the portal and assigns a group to it: not the
    # collection's role, so its assignment must survive every run below.
    foreign_role = {
        "allowedMemberTypes": ["User"],
        "description": "made in the portal",
        "displayName": "Auditor",
        "id": "0d6f2f64-1c5e-4d8e-9a3b-2b7c9d0e1f23",
        "isEnabled": True,
        "origin": "Application",
        "value": "colors.auditor",
    }
    with fake.lock:
        app_state = fake.applications[app["id"]]
        app_state["appRoles"].append(foreign_role)
        fake.app_role_assignments[principal["id"]].append(
            {
                "id": "foreign-assignment",
                "appRoleId": foreign_role["id"],
                "principalId": GROUP_OPS,
                "principalType": "Group",
            }
        )
    assignments = [
        {"principal_id": GROUP_OPS, "principal_type": "Group", "role": "colors.user"},
        {"principal_id": USER_ALICE, "principal_type": "User", "role": "colors.user"},
    ]
    extra = json.dumps({"zerotrust_aks_app_role_assignments": assignments})

    run, requests = play(azure_playbook, fake, "--check", "--diff", "-e", extra)
    assert run.failed == 0
    assert writes(requests) == []
    assert f"colors.user: {GROUP_COLORS}" in run.output  # the diff shows the assignment that goes

    run, requests = play(azure_playbook, fake, "-e", extra)
    assert run.failed == 0
    assert sorted(app_role_assignments(fake)) == sorted(
        [(GROUP_OPS, role_id), (USER_ALICE, role_id), (GROUP_OPS, foreign_role["id"])]
    )
    assert any(r["value"] == "colors.auditor" and r["isEnabled"] for r in the_application(fake)["appRoles"])
    assert f"POST /v1.0/servicePrincipals/{principal['id']}/appRoleAssignedTo" in writes(requests)

    run, requests = play(azure_playbook, fake, "-e", extra)
    assert run.changed == 0
    assert writes(requests) == []


def test_a_retired_app_role_is_disabled_then_removed_with_its_assignments(
    azure_playbook: Playbook, fake: FakeAzure
) -> None:
    roles = [
        {"value": "colors.user", "display_name": "Colors user", "description": "Signs in"},
        {"value": "colors.admin", "display_name": "Colors admin", "description": "Administers"},
    ]
    assignments = [
        {"principal_id": GROUP_OPS, "principal_type": "Group", "role": "colors.user"},
        {"principal_id": USER_ALICE, "principal_type": "User", "role": "colors.admin"},
    ]
    run, _requests = play(
        azure_playbook,
        fake,
        "-e",
        json.dumps({"zerotrust_aks_app_roles": roles, "zerotrust_aks_app_role_assignments": assignments}),
    )
    assert run.failed == 0
    by_value = {r["value"]: r for r in the_application(fake)["appRoles"]}
    assert (USER_ALICE, by_value["colors.admin"]["id"]) in app_role_assignments(fake)

    # colors.admin leaves the inventory: Graph refuses to remove an enabled role, so the
    # collection disables it first; its assignment goes before the role does.
    run, requests = play(azure_playbook, fake)
    assert run.failed == 0
    app = the_application(fake)
    assert sorted(r["value"] for r in app["appRoles"]) == ["colors.auditor", "colors.user"]
    patches = [
        r["body"]["appRoles"] for r in requests if r["method"] == "PATCH" and "appRoles" in (r.get("body") or {})
    ]
    assert [[(r["value"], r["isEnabled"]) for r in body if r["value"] == "colors.admin"] for body in patches] == [
        [("colors.admin", False)],
        [],
    ]
    user_role = by_value["colors.user"]["id"]
    assert sorted(app_role_assignments(fake)) == sorted(
        [(GROUP_COLORS, user_role), (GROUP_OPS, "0d6f2f64-1c5e-4d8e-9a3b-2b7c9d0e1f23")]
    )
    run, requests = play(azure_playbook, fake)
    assert run.changed == 0
    assert writes(requests) == []


def test_federated_client_auth_removes_the_client_secret_and_trusts_the_service_account(
    azure_playbook: Playbook, fake: FakeAzure
) -> None:
    extra = json.dumps({"zerotrust_aks_client_auth": "federated"})
    identity = fake.resource(IDENTITY_ID)
    assert identity is not None
    run, requests = play(azure_playbook, fake, "-e", extra)
    assert run.failed == 0
    app = the_application(fake)
    cluster = fake.resource(CLUSTER_ID)
    assert cluster is not None
    issuer = cluster["properties"]["oidcIssuerProfile"]["issuerURL"]
    # No password at all: the ones the collection made are removed and none is added.
    assert app["passwordCredentials"] == []
    assert not any(r["path"].endswith("/addPassword") for r in requests)
    assert [(c["name"], c["issuer"], c["subject"], c["audiences"]) for c in fake.federated_credentials[app["id"]]] == [
        ("zerotrust-aks-oauth2-proxy", issuer, SUBJECT, ["api://AzureADTokenExchange"])
    ]
    # The identity keeps reading the client id and the cookie secret; the client secret's grant goes.
    assert secret_scope_grants(fake, identity["properties"]["principalId"]) == [
        "oauth2-proxy-client-id",
        "oauth2-proxy-cookie-secret",
    ]
    assert "client_secret: ''" in run.output or "client_secret: ''" in run.output.replace('"', "'")

    run, requests = play(azure_playbook, fake, "-e", extra)
    assert run.changed == 0
    assert writes(requests) == []

    # Back to a client secret: a new one is made and stored, the federated credential goes.
    run, _requests = play(azure_playbook, fake)
    assert run.failed == 0
    app = the_application(fake)
    assert len(app["passwordCredentials"]) == 1
    assert fake.federated_credentials[app["id"]] == []
    stored = fake.vaults[KEYVAULT].secrets["oauth2-proxy-client-secret"][-1]
    assert stored["tags"]["zerotrust-aks-key-id"] == app["passwordCredentials"][0]["keyId"]
    assert secret_scope_grants(fake, identity["properties"]["principalId"]) == ALL_SECRETS


def test_a_cluster_without_network_policy_engine_is_warned_about(azure_playbook: Playbook, fake: FakeAzure) -> None:
    with fake.lock:
        cluster = fake.resources[CLUSTER_ID.lower()]
        saved = dict(cluster["properties"]["networkProfile"])
        cluster["properties"]["networkProfile"] = {"networkPlugin": "azure", "networkPolicy": "none"}
    try:
        run, requests = play(azure_playbook, fake, "--check")
    finally:
        with fake.lock:
            fake.resources[CLUSTER_ID.lower()]["properties"]["networkProfile"] = saved
    assert run.failed == 0
    assert writes(requests) == []
    assert "[WARNING]" in run.output
    assert "no network policy engine" in run.output
    assert "silently ignored" in run.output


def test_addon_mode_grants_the_addon_identity_secret_scope_and_warns(azure_playbook: Playbook, fake: FakeAzure) -> None:
    run, _requests = play(azure_playbook, fake, "-e", json.dumps({"zerotrust_aks_identity_mode": "addon"}))
    assert run.failed == 0
    cluster = fake.resource(CLUSTER_ID)
    assert cluster is not None
    addon = cluster["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]["identity"]
    assert secret_scope_grants(fake, addon["objectId"]) == ALL_SECRETS
    assert "reaches the instance metadata endpoint" in " ".join(run.output.split())


def test_no_secret_value_in_any_output(fake: FakeAzure) -> None:
    assert outputs, "the runs above did not happen"
    assert any("-vvv" in o or "<127.0.0.1>" in o or "ESTABLISH LOCAL CONNECTION" in o for o in outputs)
    values = [*vault_values(fake), DEPLOYER_SECRET]
    values = [v for v in values if len(v) >= 8 and not re.fullmatch(r"[0-9a-f-]{36}", v)]
    assert values
    for output in outputs:
        for value in values:
            assert value not in output
