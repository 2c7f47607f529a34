"""What the azure tests read from the fake's request log, its state and a playbook's output."""

from __future__ import annotations

import re
import typing as t

from fake_azure import FakeAzure
from fake_subscription import CLUSTER_ID


def fingerprints(output: str) -> dict[str, str]:
    found = dict(re.findall(r"(client_secret|cookie_secret): (sha256:[0-9a-f]{12})", output))
    assert set(found) == {"client_secret", "cookie_secret"}, output
    return found


def writes(requests: list[dict[str, t.Any]]) -> list[str]:
    return [
        f"{r['method']} {r['path']}"
        for r in requests
        if r["method"] != "GET" and not r["path"].endswith("/oauth2/v2.0/token")
    ]


def cluster_puts(requests: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return [r for r in requests if r["method"] == "PUT" and r["path"].lower() == CLUSTER_ID.lower()]


def role_assignments(fake: FakeAzure) -> list[dict[str, t.Any]]:
    """The role assignments the collection made (the deployer's seeded roles on the resource groups are not)."""
    seeded = tuple(
        f"{g['id'].lower()}/providers/microsoft.authorization/roleassignments/" for g in fake.resource_groups.values()
    )
    return [r for key, r in fake.resources.items() if "/roleassignments/" in key and not key.startswith(seeded)]


def vault_values(fake: FakeAzure) -> list[str]:
    return [v["value"] for vault in fake.vaults.values() for versions in vault.secrets.values() for v in versions]


def the_application(fake: FakeAzure) -> dict[str, t.Any]:
    assert len(fake.applications) == 1, fake.applications
    return next(iter(fake.applications.values()))


def the_service_principal(fake: FakeAzure) -> dict[str, t.Any]:
    assert len(fake.service_principals) == 1, fake.service_principals
    return next(iter(fake.service_principals.values()))


def app_role_assignments(fake: FakeAzure) -> list[tuple[str, str]]:
    """(principal id, app role id) of every assignment to the application's service principal."""
    return [
        (a["principalId"].lower(), a["appRoleId"])
        for assignments in fake.app_role_assignments.values()
        for a in assignments
    ]
