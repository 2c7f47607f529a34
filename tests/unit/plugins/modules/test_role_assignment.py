# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.role_assignment, run through its main() against a scripted ARM."""

from __future__ import annotations

import typing as t

import pytest

# The module runs on azure.azcollection's base class, which imports the azure SDKs. ansible-test's
# units environment does not install them: there this file is skipped, and scripts/test units
# runs it again with the project's virtualenv, which has them (stage "units", second step).
pytest.importorskip("azure.identity", reason="needs azure.azcollection's Python requirements (scripts/test units)")
from ansible_collections.zerotrust.aks.plugins.modules import role_assignment
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules.azure_http import (
    SUBSCRIPTION,
    Answer,
    FakeSession,
    Request,
    VirtualClock,
    fake_azure,
    warnings,
)

VAULT = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
OFFICER_ID = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{OFFICER}"
PRINCIPAL = "11111111-2222-3333-4444-555555555555"
LIST = r"/providers/Microsoft\.Authorization/roleAssignments$"
ITEM = r"/providers/Microsoft\.Authorization/roleAssignments/[0-9a-f-]{36}$"


def assignment(scope: str = VAULT, role: str = OFFICER_ID, name: str = "a1") -> dict[str, t.Any]:
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "name": name,
        "properties": {
            "scope": scope,
            "roleDefinitionId": role,
            "principalId": PRINCIPAL,
            "principalType": "ServicePrincipal",
        },
    }


def created(request: Request) -> Answer:
    return Answer(201, {"id": request.path, "properties": request.body["properties"]})


def principal_not_found() -> Answer:
    return Answer(
        400,
        {
            "error": {
                "code": "PrincipalNotFound",
                "message": f"Principal {PRINCIPAL.replace('-', '')} does not exist in the directory.",
            }
        },
    )


def run(
    capsys: pytest.CaptureFixture[str], session: FakeSession, clock: VirtualClock | None = None, **args: t.Any
) -> dict[str, t.Any]:
    args = {
        "scope": VAULT,
        "assignee_object_id": PRINCIPAL,
        "role_definition_id": OFFICER,
        "auth_source": "env",
        **args,
    }
    with fake_azure(session, clock or VirtualClock()):
        result: dict[str, t.Any] = utils.run_module(role_assignment.main, capsys, **args)
    return result


def test_creates_with_principal_type_and_full_role_id(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", LIST, Answer(200, {"value": []}))
    session.on("PUT", ITEM, created)
    result = run(capsys, session, principal_type="User", _ansible_diff=True)
    assert result["rc"] == 0 and result["changed"] is True, result
    (put,) = session.calls("PUT")
    assert put.path.startswith(VAULT + "/providers/Microsoft.Authorization/roleAssignments/")
    assert put.body == {
        "properties": {"roleDefinitionId": OFFICER_ID, "principalId": PRINCIPAL, "principalType": "User"}
    }
    assert put.params == {"api-version": "2022-04-01"}
    (listing,) = session.calls("GET")
    assert listing.params["$filter"] == f"principalId eq '{PRINCIPAL}'"
    assert result["id"] == put.path and result["waited_for_principal"] == 0
    assert result["diff"]["before"] == {} and result["diff"]["after"]["principal_type"] == "User"


def test_without_a_principal_type_none_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    """An object id whose type the user did not say (a user or a group): Azure looks it up."""
    session = FakeSession()
    session.on("GET", LIST, Answer(200, {"value": []}))
    session.on("PUT", ITEM, created)
    result = run(capsys, session)
    assert result["rc"] == 0 and result["changed"] is True, result
    (put,) = session.calls("PUT")
    assert put.body == {"properties": {"roleDefinitionId": OFFICER_ID, "principalId": PRINCIPAL}}
    assert result["principal_type"] == ""


def test_existing_assignment_at_the_scope_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on(
        "GET",
        LIST,
        Answer(200, {"value": [assignment(role=OFFICER_ID.upper().replace("/SUBSCRIPTIONS", "/subscriptions"))]}),
    )
    result = run(capsys, session, role_definition_id=OFFICER_ID)
    assert result["changed"] is False and session.writes == []
    assert result["id"].endswith("/roleAssignments/a1")


def test_assignments_elsewhere_or_of_other_roles_do_not_count(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    parent = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg"
    other_role = OFFICER_ID.replace(OFFICER, "4633458b-17de-408a-b874-0445c86b69e6")
    session.on("GET", LIST, Answer(200, {"value": [assignment(scope=parent), assignment(role=other_role)]}))
    session.on("PUT", ITEM, created)
    result = run(capsys, session)
    assert result["changed"] is True and len(session.calls("PUT")) == 1


def test_check_mode_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", LIST, Answer(200, {"value": []}))
    result = run(capsys, session, _ansible_check_mode=True)
    assert result["changed"] is True and session.writes == []


def test_principal_not_found_is_retried_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", LIST, Answer(200, {"value": []}))
    session.on("PUT", ITEM, principal_not_found(), principal_not_found(), principal_not_found(), created)
    result = run(capsys, session, clock)
    assert result["rc"] == 0 and result["changed"] is True
    assert clock.sleeps == [2.0, 4.0, 8.0]
    assert result["waited_for_principal"] == 14.0
    # One name for every attempt: a retried PUT cannot make two assignments.
    assert len({put.path for put in session.calls("PUT")}) == 1
    (warning,) = warnings(result)
    assert "waited 14s for Azure to know principal" in warning and "PrincipalNotFound" in warning


def test_principal_not_found_gives_up_at_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", LIST, Answer(200, {"value": []}))
    session.on("PUT", ITEM, principal_not_found())
    result = run(capsys, session, clock, principal_timeout=60)
    assert result["rc"] == 1 and result["error_code"] == "PrincipalNotFound"
    assert sum(clock.sleeps) == 60 and result["waited_for_principal"] == 60
    assert "still answers PrincipalNotFound after 60s (principal_timeout is 60s)" in result["msg"]
    assert PRINCIPAL in result["msg"] and "does not exist in the directory" in result["msg"]


def test_role_assignment_exists_counts_as_present(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", LIST, Answer(200, {"value": []}), Answer(200, {"value": [assignment(name="made-meanwhile")]}))
    session.on(
        "PUT",
        ITEM,
        Answer(409, {"error": {"code": "RoleAssignmentExists", "message": "The role assignment already exists."}}),
    )
    result = run(capsys, session)
    assert result["rc"] == 0 and result["changed"] is False
    assert result["id"].endswith("/made-meanwhile")


def test_throttling_is_retried(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on(
        "GET",
        LIST,
        Answer(429, {"error": {"code": "TooManyRequests", "message": "slow"}}, {"Retry-After": "9"}),
        Answer(200, {"value": []}),
    )
    session.on("PUT", ITEM, Answer(503), created)
    result = run(capsys, session, clock)
    assert result["rc"] == 0 and clock.sleeps[0] == 9.0
    assert any("retried 2 Azure request(s)" in warning for warning in warnings(result))


def test_absent_removes_only_matching_assignments(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    parent = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg"
    session.on("GET", LIST, Answer(200, {"value": [assignment(), assignment(scope=parent, name="keep")]}))
    session.on("DELETE", ITEM + "|/a1$", Answer(200, {}))
    result = run(capsys, session, state="absent")
    assert result["changed"] is True
    (delete,) = session.calls("DELETE")
    assert delete.path.endswith("/roleAssignments/a1") and result["removed"] == [assignment()["id"]]


def test_absent_in_check_mode_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", LIST, Answer(200, {"value": [assignment()]}))
    result = run(capsys, session, state="absent", _ansible_check_mode=True)
    assert result["changed"] is True and session.writes == []


def test_forbidden_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", LIST, Answer(200, {"value": []}))
    session.on(
        "PUT",
        ITEM,
        Answer(
            403,
            {
                "error": {
                    "code": "AuthorizationFailed",
                    "message": "The client 'x' does not have authorization to perform action "
                    "'Microsoft.Authorization/roleAssignments/write'",
                }
            },
        ),
    )
    result = run(capsys, session)
    assert result["rc"] == 1 and result["status"] == 403
    assert "roleAssignments/write" in result["msg"] and "User Access Administrator" in result["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"assignee_object_id": "app-client-id"}, "assignee_object_id must be an object id"),
        ({"role_definition_id": "Key Vault Secrets Officer"}, "role_definition_id must be a role definition GUID"),
    ],
)
def test_bad_input_is_refused_before_any_call(
    capsys: pytest.CaptureFixture[str], args: dict[str, str], message: str
) -> None:
    session = FakeSession()
    result = run(capsys, session, **args)
    assert result["rc"] == 1 and message in result["msg"] and session.log == []


@pytest.mark.parametrize(
    ("role", "scope", "expected"),
    [
        (OFFICER.upper(), VAULT, OFFICER_ID),
        (OFFICER, "/providers/Microsoft.Management/managementGroups/mg", None),
        (OFFICER_ID, VAULT, OFFICER_ID),
    ],
)
def test_full_role_definition_id(role: str, scope: str, expected: str | None) -> None:
    subscriptionless = f"/providers/Microsoft.Authorization/roleDefinitions/{OFFICER}"
    assert role_assignment.full_role_definition_id(role, scope, None) == (expected or subscriptionless)


def test_role_assignment_exists_after_a_lost_answer_counts_as_made_here(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", LIST, Answer(200, {"value": []}), Answer(200, {"value": [assignment(name="ours")]}))
    exists = Answer(409, {"error": {"code": "RoleAssignmentExists", "message": "The role assignment already exists."}})
    session.on("PUT", ITEM, Answer(504), exists)
    result = run(capsys, session, clock)
    assert result["rc"] == 0 and result["changed"] is True and result["id"].endswith("/ours")
