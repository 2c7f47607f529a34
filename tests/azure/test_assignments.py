"""Who owns an app role assignment: the collection removes only the assignments it made.

playbooks/azure.yml against a fake of its own (module-scoped fixtures): the collection records
the id of every assignment it makes in a tag of the service principal; an administrator's
assignments to the collection's roles, made here through the fake's Graph API as the portal
would, and the service principal's other tags survive every run. The tests run in order.
"""

from __future__ import annotations

import json
import typing as t

import pytest
from fake_azure import FakeAzure
from fake_subscription import GROUP_COLORS, GROUP_OPS, USER_ALICE
from graph_client import Client
from observations import app_role_assignments, the_application, the_service_principal, writes
from support.playbook import Playbook, PlaybookRun

PREFIX = "zerotrust.aks/assignment="
FOREIGN_TAG = "team=colors"  # an administrator's own tag on the service principal
ROLES = [
    {"value": "colors.user", "display_name": "Colors user", "description": "Signs in"},
    {"value": "colors.admin", "display_name": "Colors admin", "description": "Administers"},
]


@pytest.fixture(scope="module")
def admin(fake: FakeAzure) -> Client:
    """Graph as an administrator's tool reaches it (not the collection's module)."""
    return Client(fake, fake.graph_url + "/v1.0/", fake.graph_url + "/")


def play(playbook: Playbook, fake: FakeAzure, *args: str) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    start = len(fake.log)
    run = playbook(*args)
    assert run.failed == 0, run.describe()
    return run, fake.log[start:]


def inventory(*assignments: tuple[str, str, str], roles: list[dict[str, str]] | None = None) -> str:
    variables: dict[str, t.Any] = {
        "zerotrust_aks_app_role_assignments": [
            {"principal_id": p, "principal_type": kind, "role": role} for p, kind, role in assignments
        ]
    }
    if roles is not None:
        variables["zerotrust_aks_app_roles"] = roles
    return json.dumps(variables)


def recorded(fake: FakeAzure) -> set[tuple[str, str]]:
    """(principal id, role id) of the assignments the service principal's tags record."""
    principal = the_service_principal(fake)
    ids = {tag.removeprefix(PREFIX) for tag in principal.get("tags") or [] if tag.startswith(PREFIX)}
    assignments = fake.app_role_assignments[principal["id"]]
    assert ids <= {a["id"] for a in assignments}, "a tag records an assignment that does not exist"
    return {(a["principalId"].lower(), a["appRoleId"]) for a in assignments if a["id"] in ids}


def role_id(fake: FakeAzure, value: str) -> str:
    return str(next(r["id"] for r in the_application(fake)["appRoles"] if r["value"] == value))


def assign_by_hand(admin: Client, fake: FakeAzure, principal_id: str, value: str) -> str:
    principal = the_service_principal(fake)
    body = {"principalId": principal_id, "resourceId": principal["id"], "appRoleId": role_id(fake, value)}
    answer = admin("POST", f"servicePrincipals/{principal['id']}/appRoleAssignedTo", body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def flat(run: PlaybookRun) -> str:
    """The run's output on one line: Ansible wraps long warnings."""
    return " ".join(run.output.split())


def test_the_first_run_records_the_assignment_it_makes(
    azure_playbook: Playbook, fake: FakeAzure, admin: Client
) -> None:
    play(azure_playbook, fake, "-e", inventory((GROUP_OPS, "Group", "colors.user")))
    user = role_id(fake, "colors.user")
    assert recorded(fake) == {(GROUP_OPS, user)}
    # An administrator tags the service principal too (read, add, write the whole list back).
    principal = the_service_principal(fake)
    tags = admin("GET", f"servicePrincipals/{principal['id']}").json()["tags"]
    answer = admin("PATCH", f"servicePrincipals/{principal['id']}", {"tags": [*tags, FOREIGN_TAG]})
    assert answer.status_code == 204


def test_an_assignment_made_by_hand_survives_a_run_that_does_not_list_it(
    azure_playbook: Playbook, fake: FakeAzure, admin: Client
) -> None:
    user = role_id(fake, "colors.user")
    # The collection makes Alice's assignment; an administrator assigns colors-users by hand.
    play(
        azure_playbook, fake, "-e", inventory((GROUP_OPS, "Group", "colors.user"), (USER_ALICE, "User", "colors.user"))
    )
    assert recorded(fake) == {(GROUP_OPS, user), (USER_ALICE, user)}
    assign_by_hand(admin, fake, GROUP_COLORS, "colors.user")

    # Alice leaves the inventory; colors-users was never in it.
    extra = inventory((GROUP_OPS, "Group", "colors.user"))
    run, requests = play(azure_playbook, fake, "--check", "--diff", "-e", extra)
    assert writes(requests) == []
    assert f"colors.user: {GROUP_COLORS} (foreign)" in run.output
    assert f"colors.user: {USER_ALICE} (recorded)" in run.output

    run, requests = play(azure_playbook, fake, "-e", extra)
    principal = the_service_principal(fake)
    assert sorted(app_role_assignments(fake)) == sorted([(GROUP_OPS, user), (GROUP_COLORS, user)])
    assert recorded(fake) == {(GROUP_OPS, user)}  # Alice's tag went with her assignment
    assert FOREIGN_TAG in principal["tags"]
    assert f"{GROUP_COLORS} to the app role colors.user" in flat(run)
    assert "not made by the collection; remove it in Entra if it should go" in flat(run)
    # Exactly Alice's assignment deleted, then one PATCH of the tags.
    sent = [w for w in writes(requests) if "servicePrincipals" in w]
    assert [w.split(" ")[0] for w in sent] == ["DELETE", "PATCH"]
    assert sent[1] == f"PATCH /v1.0/servicePrincipals/{principal['id']}"

    run, requests = play(azure_playbook, fake, "-e", extra)
    assert run.changed == 0
    assert writes(requests) == []


def test_an_entry_met_by_an_assignment_made_by_hand_adds_nothing_and_records_nothing(
    azure_playbook: Playbook, fake: FakeAzure
) -> None:
    user = role_id(fake, "colors.user")
    extra = inventory((GROUP_OPS, "Group", "colors.user"), (GROUP_COLORS, "Group", "colors.user"))
    run, requests = play(azure_playbook, fake, "-e", extra)
    assert run.changed == 0
    assert writes(requests) == []
    assert recorded(fake) == {(GROUP_OPS, user)}
    assert sorted(app_role_assignments(fake)) == sorted([(GROUP_OPS, user), (GROUP_COLORS, user)])


def test_a_retired_role_held_by_a_foreign_assignment_is_disabled_not_removed(
    azure_playbook: Playbook, fake: FakeAzure, admin: Client
) -> None:
    play(
        azure_playbook,
        fake,
        "-e",
        inventory((GROUP_OPS, "Group", "colors.user"), (USER_ALICE, "User", "colors.admin"), roles=ROLES),
    )
    admin_role = role_id(fake, "colors.admin")
    assert (USER_ALICE, admin_role) in recorded(fake)
    by_hand = assign_by_hand(admin, fake, GROUP_OPS, "colors.admin")

    # colors.admin leaves the inventory: Alice's recorded assignment goes, the one made by hand holds the role.
    extra = inventory((GROUP_OPS, "Group", "colors.user"), roles=ROLES[:1])
    run, requests = play(azure_playbook, fake, "--check", "--diff", "-e", extra)
    assert writes(requests) == []
    assert "colors.admin (disabled)" in run.output

    run, _requests = play(azure_playbook, fake, "-e", extra)
    roles = {r["value"]: r for r in the_application(fake)["appRoles"]}
    assert roles["colors.admin"]["isEnabled"] is False
    assert (GROUP_OPS, admin_role) in app_role_assignments(fake)
    assert (USER_ALICE, admin_role) not in app_role_assignments(fake)
    assert "colors.admin is no longer declared but 1 assignment(s) not made by the collection" in flat(run)
    assert FOREIGN_TAG in the_service_principal(fake)["tags"]

    run, requests = play(azure_playbook, fake, "-e", extra)
    assert run.changed == 0
    assert writes(requests) == []

    # Once the administrator removes their assignment, the next run removes the role.
    principal = the_service_principal(fake)
    assert admin("DELETE", f"servicePrincipals/{principal['id']}/appRoleAssignedTo/{by_hand}").status_code == 204
    play(azure_playbook, fake, "-e", extra)
    assert "colors.admin" not in {r["value"] for r in the_application(fake)["appRoles"]}
    assert FOREIGN_TAG in the_service_principal(fake)["tags"]
