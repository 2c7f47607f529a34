"""The fake's Graph and ARM rules that the azure layer depends on, checked directly over HTTPS.

A fake that accepted what Graph refuses would let the entra_application module pass while it
would fail against Entra ID: these tests pin the refusals (an enabled app role removed, an
assignment to a principal or role that does not exist, a duplicate assignment, a second
credential for the same issuer and subject, a route the fake does not implement).
"""

from __future__ import annotations

import time
import typing as t
import uuid

import pytest
import requests
from fake_azure import FakeAzure
from fake_subscription import GROUP_COLORS, RESOURCE_GROUP, SUBSCRIPTION
from graph_client import Client


@pytest.fixture(scope="module")
def graph(fake: FakeAzure) -> Client:
    return Client(fake, fake.graph_url + "/v1.0/", fake.graph_url + "/")


@pytest.fixture(scope="module")
def arm(fake: FakeAzure) -> Client:
    return Client(fake, fake.base_url, fake.base_url + "/")


def role(value: str, enabled: bool = True, role_id: str = "") -> dict[str, t.Any]:
    return {
        "allowedMemberTypes": ["User"],
        "description": value,
        "displayName": value,
        "id": role_id or str(uuid.uuid5(uuid.NAMESPACE_URL, value)),
        "isEnabled": enabled,
        "value": value,
    }


def error_code(answer: requests.Response) -> str:
    return str(answer.json()["error"]["code"])


@pytest.fixture(scope="module")
def app_and_principal(graph: Client) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    app = graph("POST", "applications", {"displayName": "rules", "appRoles": [role("a.user")]}).json()
    principal = graph("POST", "servicePrincipals", {"appId": app["appId"]}).json()
    return app, principal


def test_an_enabled_app_role_cannot_be_removed_or_renamed(
    graph: Client, app_and_principal: tuple[dict[str, t.Any], dict[str, t.Any]]
) -> None:
    app, _principal = app_and_principal
    removed = graph("PATCH", f"applications/{app['id']}", {"appRoles": []})
    assert removed.status_code == 400
    assert error_code(removed) == "CannotDeleteOrUpdateEnabledEntitlement"
    renamed = graph("PATCH", f"applications/{app['id']}", {"appRoles": [dict(role("a.user"), value="b.user")]})
    assert renamed.status_code == 400
    # Disabled first, then removed: accepted.
    assert graph("PATCH", f"applications/{app['id']}", {"appRoles": [role("a.user", enabled=False)]}).status_code == 204
    assert graph("PATCH", f"applications/{app['id']}", {"appRoles": []}).status_code == 204
    assert graph("PATCH", f"applications/{app['id']}", {"appRoles": [role("a.user")]}).status_code == 204


@pytest.mark.parametrize(
    "bad",
    [
        {"value": "has space"},
        {"value": ".dot"},
        {"value": "x" * 121},
        {"id": "not-a-guid"},
        {"allowedMemberTypes": ["Robot"]},
        {"origin": "Application"},
    ],
)
def test_invalid_app_roles_are_refused(
    graph: Client, app_and_principal: tuple[dict[str, t.Any], dict[str, t.Any]], bad: dict[str, t.Any]
) -> None:
    app, _principal = app_and_principal
    answer = graph("PATCH", f"applications/{app['id']}", {"appRoles": [role("a.user"), dict(role("c.user"), **bad)]})
    assert answer.status_code == 400


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        pytest.param(
            "app", {"displayName": "x", "replyUrls": ["https://a/"]}, "'replyUrls' does not exist", id="unknown"
        ),
        pytest.param("app", {"web": {"redirectUri": "https://a/"}}, "'redirectUri' does not exist", id="nested"),
        pytest.param("app", {"web": {"redirectUris": "https://a/"}}, "Invalid value", id="string for a list"),
        pytest.param("app", {"appRoles": [{"name": "x"}]}, "'name' does not exist", id="app role member"),
        pytest.param("app", {"tags": "one"}, "Invalid value", id="tags not a list"),
        pytest.param("sp", {"appRoleAssignmentRequired": "yes"}, "Invalid value", id="bool as string"),
        pytest.param("sp", {"redirectUris": []}, "'redirectUris' does not exist", id="application member on sp"),
        pytest.param("add", {"passwordCredential": {"secret": "x"}}, "'secret' does not exist", id="action parameter"),
    ],
)
def test_bodies_must_be_of_their_resource_type(
    fake: FakeAzure,
    graph: Client,
    app_and_principal: tuple[dict[str, t.Any], dict[str, t.Any]],
    route: str,
    body: dict[str, t.Any],
    message: str,
) -> None:
    """Graph's types are not open (OData): an undeclared property or a wrong shape is a 400; nothing changes."""
    app, principal = app_and_principal
    path = {
        "app": f"applications/{app['id']}",
        "sp": f"servicePrincipals/{principal['id']}",
        "add": f"applications/{app['id']}/addPassword",
    }[route]
    before = repr(fake.applications[app["id"]])
    answer = graph("POST" if route == "add" else "PATCH", path, body)
    assert answer.status_code == 400, answer.text
    assert error_code(answer) == "Request_BadRequest"
    assert message in answer.json()["error"]["message"]
    assert repr(fake.applications[app["id"]]) == before


def test_assignments_need_an_existing_principal_and_a_declared_role_and_are_unique(
    fake: FakeAzure, graph: Client, app_and_principal: tuple[dict[str, t.Any], dict[str, t.Any]]
) -> None:
    _app, principal = app_and_principal
    fake.add_group(GROUP_COLORS, "colors-users")
    url = f"servicePrincipals/{principal['id']}/appRoleAssignedTo"
    good = {"principalId": GROUP_COLORS, "resourceId": principal["id"], "appRoleId": role("a.user")["id"]}
    unknown_principal = dict(good, principalId=str(uuid.uuid4()))
    assert graph("POST", url, unknown_principal).status_code == 404
    undeclared = dict(good, appRoleId=str(uuid.uuid4()))
    answer = graph("POST", url, undeclared)
    assert answer.status_code == 400
    assert "was not found on application" in answer.json()["error"]["message"]
    made = graph("POST", url, good)
    assert made.status_code == 201
    assert made.json()["principalType"] == "Group"
    duplicate = graph("POST", url, good)
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.json()["error"]["message"]
    assert graph("DELETE", f"{url}/{made.json()['id']}").status_code == 204
    assert graph("DELETE", f"{url}/{made.json()['id']}").status_code == 400


def test_service_principal_tags_are_replaced_by_patch_and_joined_with_the_applications(
    fake: FakeAzure, graph: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # https://learn.microsoft.com/graph/api/resources/serviceprincipal (tags): a string collection,
    # not nullable, read as the union of the service principal's and its application's tags.
    monkeypatch.setattr(fake.behaviour, "principal_lag", 0.0)  # read back at once (lag: its own test)
    app = graph("POST", "applications", {"displayName": "tagged", "tags": ["from-the-app"]}).json()
    principal = graph("POST", "servicePrincipals", {"appId": app["appId"]}).json()
    url = f"servicePrincipals/{principal['id']}"
    assert principal["tags"] == ["from-the-app"]
    assert graph("PATCH", url, {"tags": ["a", "b"]}).status_code == 204
    assert graph("GET", url).json()["tags"] == ["a", "b", "from-the-app"]
    assert graph("PATCH", url, {"tags": ["b"]}).status_code == 204
    assert graph("GET", url).json()["tags"] == ["b", "from-the-app"]
    assert graph("PATCH", url, {"tags": None}).status_code == 400
    assert graph("PATCH", url, {"tags": [1]}).status_code == 400
    # A property the fake does not model is not silently stored.
    assert graph("PATCH", url, {"notes": "x"}).status_code == 501
    assert "notes" not in fake.service_principals[principal["id"]]


def test_federated_credentials_on_an_application(
    graph: Client, app_and_principal: tuple[dict[str, t.Any], dict[str, t.Any]]
) -> None:
    app, _principal = app_and_principal
    url = f"applications/{app['id']}/federatedIdentityCredentials"
    credential = {
        "name": "zerotrust-aks-oauth2-proxy",
        "issuer": "https://oidc.example.test/x/",
        "subject": "system:serviceaccount:oauth2-proxy:oauth2-proxy",
        "audiences": ["api://AzureADTokenExchange"],
    }
    assert graph("POST", url, dict(credential, audiences=["a", "b"])).status_code == 400
    assert graph("POST", url, dict(credential, issuer="http://plain/")).status_code == 400
    made = graph("POST", url, credential)
    assert made.status_code == 201
    assert graph("POST", url, dict(credential, name="zerotrust-aks-other")).status_code == 400  # same issuer+subject
    assert graph("PATCH", f"{url}/{made.json()['id']}", {"name": "renamed"}).status_code == 400
    assert graph("DELETE", f"{url}/{made.json()['id']}").status_code == 204
    assert graph("GET", url).json()["value"] == []


def test_user_assigned_identity_credentials_are_validated(fake: FakeAzure, arm: Client) -> None:
    identity = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/rules-identity"
    )
    version = {"api-version": "2023-01-31"}
    props = {"issuer": "https://oidc.example.test/x/", "subject": "system:serviceaccount:a:b", "audiences": ["x"]}
    # No identity yet: its credential cannot exist.
    answer = arm("PUT", f"{identity}/federatedIdentityCredentials/cred", {"properties": props}, **version)
    assert answer.status_code == 404
    assert arm("PUT", identity, {"location": "westeurope"}, **version).status_code == 201
    answer = arm(
        "PUT", f"{identity}/federatedIdentityCredentials/cred", {"properties": dict(props, audiences=[])}, **version
    )
    assert answer.status_code == 400
    answer = arm("PUT", f"{identity}/federatedIdentityCredentials/cred", {"properties": props}, **version)
    assert answer.status_code == 201


def test_a_new_service_principal_is_unreadable_until_replicated_and_unique_at_once(
    fake: FakeAzure, graph: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake.behaviour, "principal_lag", 1.5)
    app = graph("POST", "applications", {"displayName": "replicated"}).json()
    made = graph("POST", "servicePrincipals", {"appId": app["appId"]})
    assert made.status_code == 201
    principal = made.json()
    assert fake.principals[principal["id"]].type == "ServicePrincipal"
    assert not fake.principal_visible(principal["id"])
    # Not found by id, not listed by appId: a replica that has not seen it yet.
    assert graph("GET", f"servicePrincipals/{principal['id']}").status_code == 404
    filtered = graph("GET", "servicePrincipals", **{"$filter": f"appId eq '{app['appId']}'"})
    assert filtered.json()["value"] == []
    # Still, a second one for the same application is refused (writes see every object).
    duplicate = graph("POST", "servicePrincipals", {"appId": app["appId"]})
    assert duplicate.status_code == 409
    assert error_code(duplicate) == "Request_MultipleObjectsWithSameKeyValue"
    assert "already in use" in duplicate.json()["error"]["message"]
    time.sleep(1.6)
    assert fake.principal_visible(principal["id"])
    assert graph("GET", f"servicePrincipals/{principal['id']}").json()["appId"] == app["appId"]
    filtered = graph("GET", "servicePrincipals", **{"$filter": f"appId eq '{app['appId']}'"})
    assert [p["id"] for p in filtered.json()["value"]] == [principal["id"]]


def test_seeded_principals_are_visible_at_once(fake: FakeAzure) -> None:
    fake.add_user("5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f", "Bob")
    assert fake.principal_visible("5D6E7F80-1A2B-4C3D-8E9F-0A1B2C3D4E5F")
    assert fake.principal_visible(fake.deployer_object_id)
    assert not fake.principal_visible(str(uuid.uuid4()))


def test_graph_checks_the_tokens_application_permissions(fake: FakeAzure, graph: Client) -> None:
    def acting_as(*roles: str, object_id: str | None = None) -> Client:
        client = Client(fake, fake.graph_url + "/v1.0/", fake.graph_url + "/")
        token = fake.issue_token(fake.graph_url + "/", object_id, roles=roles)
        client.session.headers["Authorization"] = f"Bearer {token}"
        return client

    # An application someone else (an administrator) made: the deployer does not own it.
    administrator = acting_as("Application.ReadWrite.All", object_id=str(uuid.uuid4()))
    other = administrator("POST", "applications", {"displayName": "not-owned"}).json()

    def denied(answer: requests.Response) -> bool:
        return answer.status_code == 403 and error_code(answer) == "Authorization_RequestDenied"

    assert denied(acting_as()("GET", "applications"))
    owned_by = acting_as("Application.ReadWrite.OwnedBy")
    mine = owned_by("POST", "applications", {"displayName": "owned"}).json()
    assert owned_by("POST", f"applications/{mine['id']}/addPassword", {"passwordCredential": {}}).status_code == 200
    assert owned_by("POST", "servicePrincipals", {"appId": mine["appId"]}).status_code == 201
    assert denied(owned_by("PATCH", f"applications/{other['id']}", {"displayName": "taken"}))
    assert denied(owned_by("POST", "servicePrincipals", {"appId": other["appId"]}))
    principal = administrator("POST", "servicePrincipals", {"appId": other["appId"]}).json()
    assignment = {"principalId": GROUP_COLORS, "resourceId": principal["id"], "appRoleId": str(uuid.uuid4())}
    assert denied(owned_by("POST", f"servicePrincipals/{principal['id']}/appRoleAssignedTo", assignment))
    assert fake.applications[other["id"]]["displayName"] == "not-owned"


def test_unimplemented_routes_answer_501(graph: Client, arm: Client) -> None:
    assert graph("GET", "users").status_code == 501
    assert graph("GET", "groups/x/members").status_code == 501
    # Under a known object too: never a 404 the collection could read as "not found".
    for path in ("applications/x/owners", "servicePrincipals/x/owners", "servicePrincipals/x/appRoleAssignments"):
        answer = graph("GET", path)
        assert answer.status_code == 501, path
        assert path.split("/", 2)[2] in answer.json()["error"]["message"]
    answer = arm(
        "GET", f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/virtualMachines", **{"api-version": "1"}
    )
    assert answer.status_code == 501
