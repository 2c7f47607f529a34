"""The fake's ARM rules that the azure layer depends on, checked directly over HTTPS.

A fake that accepted what ARM refuses would let the collection pass while it would fail against
Azure: these tests pin the refusals (a call without a role, a role assignment to a principal ARM
cannot see yet, a duplicate, a stale eTag, a PUT during an operation, a body the SDK models reject,
a route the fake does not implement) and the states Azure reaches slowly (propagation, operations).
"""

from __future__ import annotations

import time
import typing as t
import uuid

import pytest
import requests
from fake_azure import FakeAzure, HttpError, arm, rbac
from fake_azure.validation import validate_arm_body
from fake_subscription import CLUSTER_ID, GROUP_COLORS, RESOURCE_GROUP, SUBSCRIPTION, USER_ALICE
from graph_client import Client

GROUP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
PROVIDERS = f"{GROUP_ID}/providers"
ASSIGNMENTS = "providers/Microsoft.Authorization/roleAssignments"
AUTHORIZATION = {"api-version": "2022-04-01"}
KEYVAULT = {"api-version": "2023-07-01"}
IDENTITY = {"api-version": "2023-01-31"}
AKS = {"api-version": "2024-09-01"}


@pytest.fixture(scope="module")
def client(fake: FakeAzure) -> Client:
    return Client(fake, fake.base_url, fake.base_url + "/")


@pytest.fixture
def fast(fake: FakeAzure) -> t.Iterator[FakeAzure]:
    """Short lags for one test, restored after it."""
    saved = (fake.behaviour.principal_lag, fake.behaviour.rbac_propagation, fake.behaviour.aks_operation_polls)
    fake.behaviour.principal_lag, fake.behaviour.rbac_propagation = 0.5, 0.5
    yield fake
    fake.behaviour.principal_lag, fake.behaviour.rbac_propagation, fake.behaviour.aks_operation_polls = saved


def error(answer: requests.Response) -> tuple[int, str, str]:
    found = answer.json()["error"]
    return answer.status_code, str(found["code"]), str(found["message"])


def definition(fake: FakeAzure, role: str) -> str:
    return str(rbac.definition_id(fake, role))


def new_identity(client: Client, name: str) -> dict[str, t.Any]:
    answer = client(
        "PUT",
        f"{PROVIDERS}/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        {"location": "westeurope"},
        **IDENTITY,
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def assign(
    client: Client, scope: str, principal: str, role_id: str, principal_type: str | None = None
) -> requests.Response:
    props = {"roleDefinitionId": role_id, "principalId": principal}
    if principal_type:
        props["principalType"] = principal_type
    answer: requests.Response = client(
        "PUT", f"{scope}/{ASSIGNMENTS}/{uuid.uuid4()}", {"properties": props}, **AUTHORIZATION
    )
    return answer


def test_calls_without_a_role_at_the_scope_are_refused_as_arm_words_it(fake: FakeAzure, client: Client) -> None:
    fake.add_resource_group("rg-elsewhere")
    other = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-elsewhere"
    status, code, message = error(client("GET", other, **{"api-version": "2021-04-01"}))
    assert (status, code) == (403, "AuthorizationFailed")
    assert f"with object id '{fake.deployer_object_id}'" in message
    assert "'Microsoft.Resources/subscriptions/resourceGroups/read'" in message
    assert f"over scope '{other}' or the scope is invalid" in message
    vault = f"{other}/providers/Microsoft.KeyVault/vaults/kv-elsewhere"
    body = {
        "location": "westeurope",
        "properties": {"tenantId": fake.tenant_id, "sku": {"family": "A", "name": "standard"}},
    }
    status, code, message = error(client("PUT", vault, body, **KEYVAULT))
    assert (status, code) == (403, "AuthorizationFailed") and "'Microsoft.KeyVault/vaults/write'" in message
    assert "kv-elsewhere" not in fake.vaults
    # The deployer's roles on its own resource group let it read there.
    assert client("GET", GROUP_ID, **{"api-version": "2021-04-01"}).status_code == 200


def test_built_in_roles_grant_what_their_definitions_list(fake: FakeAzure) -> None:
    who = {
        role: str(uuid.uuid4())
        for role in (
            "Owner",
            "Contributor",
            "User Access Administrator",
            "Key Vault Secrets Officer",
            "Key Vault Secrets User",
        )
    }
    for role, principal in who.items():
        rbac.grant(fake, principal, role, GROUP_ID)
    write_assignment = "Microsoft.Authorization/roleAssignments/write"
    set_secret = "Microsoft.KeyVault/vaults/secrets/setSecret/action"  # noqa: S105 (an action name)
    get_secret = "Microsoft.KeyVault/vaults/secrets/getSecret/action"  # noqa: S105 (an action name)
    vault = f"{PROVIDERS}/Microsoft.KeyVault/vaults/any/secrets/s"
    assert rbac.has_action(fake, who["Owner"], write_assignment, vault)
    assert not rbac.has_action(
        fake, who["Contributor"], write_assignment, vault
    )  # notActions Microsoft.Authorization/*/Write
    assert rbac.has_action(fake, who["Contributor"], "Microsoft.KeyVault/vaults/write", vault)
    assert rbac.has_action(fake, who["User Access Administrator"], write_assignment, vault)
    assert not rbac.has_action(fake, who["User Access Administrator"], "Microsoft.KeyVault/vaults/write", vault)
    # Control-plane "*" is no data action: Owner and Contributor cannot read secrets.
    assert not rbac.has_action(fake, who["Owner"], get_secret, vault)
    assert rbac.has_action(fake, who["Key Vault Secrets Officer"], set_secret, vault)
    assert rbac.has_action(fake, who["Key Vault Secrets User"], get_secret, vault)
    assert not rbac.has_action(fake, who["Key Vault Secrets User"], set_secret, vault)
    # Only at or below the assignment's scope.
    assert not rbac.has_action(
        fake, who["Owner"], "Microsoft.Resources/subscriptions/resourceGroups/read", f"/subscriptions/{SUBSCRIPTION}"
    )


def test_a_new_identity_needs_principal_type_until_it_replicates(fast: FakeAzure, client: Client) -> None:
    identity = new_identity(client, "id-replicating")
    principal = identity["properties"]["principalId"]
    reader = definition(fast, "Reader")
    status, code, message = error(assign(client, GROUP_ID, principal, reader))
    assert (status, code) == (400, "PrincipalNotFound")
    assert "set the role assignment principalType" in message
    created = assign(client, GROUP_ID, principal, reader, "ServicePrincipal")
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["principalType"] == "ServicePrincipal"
    # The same role for the same principal at the same scope, under another name.
    time.sleep(0.6)
    assert error(assign(client, GROUP_ID, principal, reader))[:2] == (409, "RoleAssignmentExists")


def test_unknown_principals_wrong_types_roles_names_and_scopes_are_refused(fake: FakeAzure, client: Client) -> None:
    reader = definition(fake, "Reader")
    assert error(assign(client, GROUP_ID, str(uuid.uuid4()), reader, "ServicePrincipal"))[:2] == (
        400,
        "PrincipalNotFound",
    )
    status, code, message = error(assign(client, GROUP_ID, USER_ALICE, reader, "Group"))
    assert (status, code) == (400, "UnmatchedPrincipalType") and "'User'" in message
    robot = assign(client, GROUP_ID, USER_ALICE, reader, "Robot")
    assert error(robot)[:2] == (400, "InvalidRequestContent") and "PrincipalType" in error(robot)[2]
    missing_role = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}"
    assert error(assign(client, GROUP_ID, GROUP_COLORS, missing_role, "Group"))[:2] == (
        400,
        "RoleDefinitionDoesNotExist",
    )
    bad_name = client(
        "PUT",
        f"{GROUP_ID}/{ASSIGNMENTS}/not-a-guid",
        {"properties": {"roleDefinitionId": reader, "principalId": GROUP_COLORS}},
        **AUTHORIZATION,
    )
    assert error(bad_name)[:2] == (400, "InvalidRoleAssignmentId")
    no_vault = f"{PROVIDERS}/Microsoft.KeyVault/vaults/kv-missing"
    assert error(assign(client, no_vault, GROUP_COLORS, reader, "Group"))[:2] == (404, "ResourceNotFound")
    unknown_member = client(
        "PUT",
        f"{GROUP_ID}/{ASSIGNMENTS}/{uuid.uuid4()}",
        {"properties": {"roleDefinitionId": reader, "principalId": GROUP_COLORS, "principal": "x"}},
        **AUTHORIZATION,
    )
    status, code, message = error(unknown_member)
    assert (status, code) == (400, "InvalidRequestContent") and "Could not find member 'principal'" in message


def test_assignments_take_effect_after_propagation_and_are_listed_by_principal(fast: FakeAzure, client: Client) -> None:
    principal = str(uuid.uuid4())
    rbac.register_principal(fast, principal)
    time.sleep(0.6)
    officer = definition(fast, "Key Vault Secrets Officer")
    created = assign(client, GROUP_ID, principal, officer)
    assert created.status_code == 201, created.text
    action = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
    assert not rbac.has_action(fast, principal, action, f"{PROVIDERS}/Microsoft.KeyVault/vaults/x")
    time.sleep(0.6)
    assert rbac.has_action(fast, principal, action, f"{PROVIDERS}/Microsoft.KeyVault/vaults/x")
    # Listed from a resource below the assignment's scope, by principal; atScope() keeps only
    # those at or above the scope.
    below = f"{PROVIDERS}/Microsoft.KeyVault/vaults/x"
    listed = client("GET", f"{below}/{ASSIGNMENTS}", **AUTHORIZATION, **{"$filter": f"principalId eq '{principal}'"})
    assert [a["name"] for a in listed.json()["value"]] == [created.json()["name"]]
    rbac.grant(fast, principal, "Reader", f"{below}/secrets/s")
    at_scope = client(
        "GET",
        f"{GROUP_ID}/{ASSIGNMENTS}",
        **AUTHORIZATION,
        **{"$filter": f"atScope() and principalId eq '{principal}'"},
    )
    assert [a["name"] for a in at_scope.json()["value"]] == [created.json()["name"]]
    every = client("GET", f"{GROUP_ID}/{ASSIGNMENTS}", **AUTHORIZATION, **{"$filter": f"principalId eq '{principal}'"})
    assert len(every.json()["value"]) == 2
    # Listing needs roleAssignments/read there: the deployer has no role on the subscription.
    assert client("GET", f"/subscriptions/{SUBSCRIPTION}/{ASSIGNMENTS}", **AUTHORIZATION).status_code == 403
    # Deleting answers the assignment, then 204.
    assert client("DELETE", created.json()["id"], **AUTHORIZATION).status_code == 200
    assert client("DELETE", created.json()["id"], **AUTHORIZATION).status_code == 204


def test_cluster_etags_operations_and_conflicts(fast: FakeAzure, client: Client) -> None:
    fast.behaviour.aks_operation_polls = 2
    cluster = client("GET", CLUSTER_ID, **AKS).json()
    etag = cluster["eTag"]
    body = dict(
        cluster,
        properties=dict(cluster["properties"], addonProfiles={"azureKeyvaultSecretsProvider": {"enabled": True}}),
    )
    accepted = client("PUT", CLUSTER_ID, body, **AKS)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["properties"]["provisioningState"] == "Updating"
    assert accepted.json()["eTag"] != etag
    monitor = accepted.headers["Azure-AsyncOperation"]
    # A PUT during the operation: 409, as AKS answers.
    assert error(client("PUT", CLUSTER_ID, body, **AKS))[:2] == (409, "OperationNotAllowed")
    statuses: list[str] = []
    while not statuses or statuses[-1] != "Succeeded":
        statuses.append(
            requests.get(monitor, headers=client.session.headers, verify=client.ca_file, timeout=10).json()["status"]
        )
        assert len(statuses) < 5, statuses
    assert "InProgress" in statuses
    done = client("GET", CLUSTER_ID, **AKS).json()
    assert done["properties"]["provisioningState"] == "Succeeded"
    addon = done["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]["identity"]
    assert rbac.principal(fast, addon["objectId"]) is not None  # a new principal, replicating
    # If-Match with the eTag of the first read: 412 (called in-process: the headers reach ARM here).
    stale = {"If-Match": etag}
    with fast.lock, pytest.raises(HttpError) as refused:
        arm.handle(fast, "PUT", CLUSTER_ID, dict(AKS), body, stale)
    assert (refused.value.status, refused.value.code) == (412, "PreconditionFailed")
    with fast.lock:
        answer = arm.handle(fast, "PUT", CLUSTER_ID, dict(AKS), body, {"If-Match": done["eTag"]})
    assert answer.status == 200


def test_cluster_bodies_are_validated_with_the_sdk_models(fake: FakeAzure, client: Client) -> None:
    cluster = client("GET", CLUSTER_ID, **AKS).json()
    # Read-only members (eTag, provisioningState, fqdn, the identity's principal) are ignored.
    assert validate_arm_body(CLUSTER_ID, "2024-09-01", cluster) == []
    unknown = dict(cluster, properties=dict(cluster["properties"], addonProfile={}))
    problems = validate_arm_body(CLUSTER_ID, "2024-09-01", unknown)
    assert problems == [
        "Could not find member 'addonProfile' on object of type 'ManagedClusterProperties'. "
        "Path 'properties.addonProfile'."
    ]
    status, code, message = error(client("PUT", CLUSTER_ID, unknown, **AKS))
    assert (status, code) == (400, "InvalidRequestContent") and "addonProfile" in message
    pools = [dict(cluster["properties"]["agentPoolProfiles"][0], name="Bad_Name", count="two")]
    problems = validate_arm_body(
        CLUSTER_ID, "2024-09-01", dict(cluster, properties=dict(cluster["properties"], agentPoolProfiles=pools))
    )
    assert problems and "count" in problems[0]
    assert validate_arm_body(CLUSTER_ID, "2024-09-01", {"properties": {}}) == [
        "Parameter 'ManagedCluster.location' can not be None."
    ]


def test_vaults_access_policies_and_uri(fake: FakeAzure, client: Client) -> None:
    vault = f"{PROVIDERS}/Microsoft.KeyVault/vaults/kv-arm-rules"
    body: dict[str, t.Any] = {
        "location": "westeurope",
        "properties": {
            "tenantId": fake.tenant_id,
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": False,
            "enablePurgeProtection": True,
        },
    }
    created = client("PUT", vault, body, **KEYVAULT)
    assert created.status_code == 201, created.text
    port = fake.vaults["kv-arm-rules"].server.server_address[1]
    assert created.json()["properties"]["vaultUri"] == f"https://kv-arm-rules.vault.fake.test:{port}/"
    entry = {"tenantId": fake.tenant_id, "objectId": GROUP_COLORS, "permissions": {"secrets": ["get"]}}
    added = client("PUT", f"{vault}/accessPolicies/add", {"properties": {"accessPolicies": [entry]}}, **KEYVAULT)
    assert added.status_code == 200, added.text
    more = dict(entry, permissions={"secrets": ["list"]})
    client("PUT", f"{vault}/accessPolicies/add", {"properties": {"accessPolicies": [more]}}, **KEYVAULT)
    policies = client("GET", vault, **KEYVAULT).json()["properties"]["accessPolicies"]
    assert [p["permissions"]["secrets"] for p in policies] == [["get", "list"]]
    client(
        "PUT",
        f"{vault}/accessPolicies/replace",
        {"properties": {"accessPolicies": [dict(entry, permissions={"secrets": ["set"]})]}},
        **KEYVAULT,
    )
    assert client("GET", vault, **KEYVAULT).json()["properties"]["accessPolicies"][0]["permissions"]["secrets"] == [
        "set"
    ]
    client(
        "PUT",
        f"{vault}/accessPolicies/remove",
        {"properties": {"accessPolicies": [dict(entry, permissions={"secrets": ["set"]})]}},
        **KEYVAULT,
    )
    assert client("GET", vault, **KEYVAULT).json()["properties"]["accessPolicies"] == []
    misspelt = {"properties": {"accessPolicies": [dict(entry, permissions={"secret": ["get"]})]}}
    status, code, message = error(client("PUT", f"{vault}/accessPolicies/add", misspelt, **KEYVAULT))
    assert (status, code) == (400, "InvalidRequestContent") and "Could not find member 'secret'" in message
    no_object = {"properties": {"accessPolicies": [{"tenantId": fake.tenant_id, "permissions": {"secrets": ["get"]}}]}}
    assert error(client("PUT", f"{vault}/accessPolicies/add", no_object, **KEYVAULT))[:2] == (
        400,
        "InvalidRequestContent",
    )
    disabled = dict(body, properties=dict(body["properties"], enablePurgeProtection=False))
    assert error(client("PUT", vault, disabled, **KEYVAULT))[:2] == (400, "BadRequest")
    no_tenant = {"location": "westeurope", "properties": {"sku": {"family": "A", "name": "standard"}}}
    assert error(client("PUT", vault, no_tenant, **KEYVAULT))[:2] == (400, "InvalidRequestContent")


def test_identities_register_their_principal_and_are_validated(fake: FakeAzure, client: Client) -> None:
    identity = new_identity(client, "id-registered")
    found = rbac.principal(fake, identity["properties"]["principalId"])
    assert found is not None and found[0] == "ServicePrincipal"
    assert time.monotonic() - found[1] < 30  # created now: it replicates before ARM finds it
    path = f"{PROVIDERS}/Microsoft.ManagedIdentity/userAssignedIdentities/id-unknown-member"
    assert error(client("PUT", path, {"location": "westeurope", "kind": "x"}, **IDENTITY))[:2] == (
        400,
        "InvalidRequestContent",
    )
    assert error(client("PUT", path, {"tags": {}}, **IDENTITY))[:2] == (400, "InvalidRequestContent")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", f"{PROVIDERS}/Microsoft.KeyVault/vaults/kv-arm-rules"),
        ("PATCH", f"{PROVIDERS}/Microsoft.KeyVault/vaults/kv-arm-rules"),
        ("GET", f"{PROVIDERS}/Microsoft.Storage/storageAccounts/st"),
        ("POST", f"{CLUSTER_ID}/listClusterUserCredential"),
        ("GET", f"/subscriptions/{SUBSCRIPTION}/resourceGroups"),
    ],
)
def test_unimplemented_routes_answer_501_naming_the_route(client: Client, method: str, path: str) -> None:
    status, code, message = error(client(method, path, {} if method in ("PATCH", "POST") else None, **KEYVAULT))
    assert (status, code) == (501, "NotImplemented")
    assert f"{method} {path}" in message
