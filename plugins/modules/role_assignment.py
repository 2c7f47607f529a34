#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: role_assignment
short_description: Assign an Azure role to a principal at a scope, waiting for a new principal to replicate
version_added: 0.2.0
description:
  - Makes sure the principal O(assignee_object_id) holds the role O(role_definition_id) at exactly O(scope)
    (O(state=present)), or holds it there through no assignment (O(state=absent)).
  - Idempotent by what an assignment means, not by its name; lists the principal's assignments at the scope
    (C($filter=principalId eq '...')) and keeps those made at exactly O(scope) for the same role definition.
    A missing one is created under a new random name, so a re-run changes nothing.
  - Sends C(principalType) when O(principal_type) is given. Azure documents that a principal created
    moments ago (a new service principal or managed identity) can be unknown to role assignment for a while
    because of directory replication, and that giving its type avoids most of these failures; the remaining
    C(400 PrincipalNotFound) answers are retried for O(principal_timeout) seconds, and the module warns that,
    and why, it waited.
  - An assignment that already exists (C(409 RoleAssignmentExists), for example made meanwhile by another run)
    counts as present.
  - Throttling (429), server errors and network errors are retried for O(azure_retry_timeout) seconds.
  - C(azure.azcollection.azure_rm_roleassignment) sends no C(principalType) and never retries, so it fails on
    new identities; hence this module.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details:
      - Sends no write; reports what would change.
  diff_mode:
    support: full
options:
  scope:
    description:
      - The resource id the assignment applies to, for example a resource group
        (C(/subscriptions/<id>/resourceGroups/<name>)) or a Key Vault.
    type: str
    required: true
  assignee_object_id:
    description: Object id of the user, group, service principal or managed identity that gets the role.
    type: str
    required: true
  principal_type:
    description:
      - Type of O(assignee_object_id). Managed identities are C(ServicePrincipal).
      - Azure rejects an assignment whose type does not match the principal (C(UnmatchedPrincipalType)).
      - Omit it when the type is not known (for example an object id a user lists, which may be a user or a group);
        then no C(principalType) is sent and Azure looks the principal up, so a principal created moments ago is
        more likely to be answered C(PrincipalNotFound) (still retried for O(principal_timeout)).
    type: str
    choices: [ServicePrincipal, User, Group, ForeignGroup]
  role_definition_id:
    description:
      - The role, as its GUID (for example C(b86a8fe4-44ce-4948-aee5-eccb2c155cd7) for Key Vault Secrets Officer)
        or its full id (C(/subscriptions/<id>/providers/Microsoft.Authorization/roleDefinitions/<guid>)).
      - A GUID is completed with the subscription of O(scope) (else O(subscription_id)).
    type: str
    required: true
  state:
    description: Whether the assignment should exist.
    type: str
    choices: [present, absent]
    default: present
  principal_timeout:
    description: Seconds to keep retrying while Azure answers C(PrincipalNotFound) for O(assignee_object_id).
    type: int
    default: 300
  api_version:
    description: Microsoft.Authorization API version.
    type: str
    default: "2022-04-01"
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - azure.azcollection.azure
  - zerotrust.aks.azure_retry
notes:
  - Needs C(Microsoft.Authorization/roleAssignments/write) (and C(delete) for O(state=absent)) on O(scope),
    for example through User Access Administrator or Role Based Access Control Administrator.
"""

EXAMPLES = r"""
- name: Let the deployer write Key Vault secrets
  zerotrust.aks.role_assignment:
    scope: "{{ vault.id }}"
    assignee_object_id: "{{ caller.object_id }}"
    principal_type: "{{ caller.principal_type }}"
    role_definition_id: b86a8fe4-44ce-4948-aee5-eccb2c155cd7

- name: Let the add-on identity read secrets, even when it was created a minute ago
  zerotrust.aks.role_assignment:
    scope: "{{ vault.id }}"
    assignee_object_id: "{{ addon.identity_object_id }}"
    role_definition_id: 4633458b-17de-408a-b874-0445c86b69e6
    principal_timeout: 600
"""

RETURN = r"""
id:
  description: Resource id of the assignment (the existing one, the one created, or the one removed); empty if none.
  returned: success
  type: str
  sample: /subscriptions/0000/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/1f2e
scope:
  description: The scope, as compared (no trailing slash).
  returned: success
  type: str
role_definition_id:
  description: The role definition's full id.
  returned: success
  type: str
principal_type:
  description: The principal type sent (or found on the existing assignment).
  returned: success
  type: str
removed:
  description: Ids of the assignments removed (or that would be, in check mode) with O(state=absent).
  returned: success
  type: list
  elements: str
waited_for_principal:
  description: Seconds spent retrying C(PrincipalNotFound) before Azure accepted the assignment; 0 when it did at once.
  returned: success
  type: float
"""

import re
import typing as t
import uuid

from ansible_collections.zerotrust.aks.plugins.module_utils._azure_auth import AzureModule
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_rest import (
    AzureRestError,
    arm_client,
)

GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
GUID_RE = re.compile(rf"\A{GUID}\Z")
ROLE_DEFINITION_ID = re.compile(
    rf"\A(?:/subscriptions/{GUID})?/providers/Microsoft\.Authorization/roleDefinitions/({GUID})\Z", re.I
)
SUBSCRIPTION_SCOPE = re.compile(rf"\A/subscriptions/({GUID})(?:/|\Z)", re.I)
# The first retry waits this long, doubling up to the maximum.
PRINCIPAL_RETRY_FIRST = 2.0
PRINCIPAL_RETRY_MAX = 15.0
REPLICATION_DOC = (
    "https://learn.microsoft.com/azure/role-based-access-control/troubleshooting"
    "#symptom---assigning-a-role-to-a-new-principal-sometimes-fails"
)


def role_guid(role_definition_id: str) -> str:
    """The role definition's GUID, lower case, from a GUID or a full id; empty when it is neither."""
    if GUID_RE.match(role_definition_id):
        return role_definition_id.lower()
    match = ROLE_DEFINITION_ID.match(role_definition_id)
    return match.group(1).lower() if match else ""


def full_role_definition_id(role_definition_id: str, scope: str, subscription_id: str | None) -> str:
    if not GUID_RE.match(role_definition_id):
        return role_definition_id
    match = SUBSCRIPTION_SCOPE.match(scope)
    subscription = match.group(1) if match else subscription_id
    prefix = f"/subscriptions/{subscription}" if subscription else ""
    return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{role_definition_id.lower()}"


def normalized_scope(scope: str) -> str:
    return "/" + scope.strip().strip("/")


def matching(assignments: list[dict[str, t.Any]], scope: str, guid: str) -> list[dict[str, t.Any]]:
    """Assignments made at exactly ``scope`` for the role ``guid``.

    ``$filter=principalId eq`` also lists the principal's assignments above and below the scope.
    """
    found = []
    for assignment in assignments:
        properties = assignment.get("properties") or {}
        if normalized_scope(str(properties.get("scope", ""))).lower() != scope.lower():
            continue
        if role_guid(str(properties.get("roleDefinitionId", ""))) != guid:
            continue
        found.append(assignment)
    return found


def describe(assignment: dict[str, t.Any] | None) -> dict[str, str]:
    if not assignment:
        return {}
    properties = assignment.get("properties") or {}
    return dict(
        scope=str(properties.get("scope", "")),
        principal_id=str(properties.get("principalId", "")),
        principal_type=str(properties.get("principalType", "")),
        role_definition_id=str(properties.get("roleDefinitionId", "")),
    )


class RoleAssignment(AzureModule):  # type: ignore[misc]
    def __init__(self) -> None:
        self.module_arg_spec = dict(
            scope=dict(type="str", required=True),
            assignee_object_id=dict(type="str", required=True),
            principal_type=dict(type="str", choices=["ServicePrincipal", "User", "Group", "ForeignGroup"]),
            role_definition_id=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            principal_timeout=dict(type="int", default=300),
            azure_retry_timeout=dict(type="int", default=600),
            api_version=dict(type="str", default="2022-04-01"),
        )
        self.results: dict[str, t.Any] = dict(changed=False, id="", removed=[], waited_for_principal=0.0)
        super().__init__(self.module_arg_spec, supports_check_mode=True, supports_tags=False, is_ad_resource=True)

    def exec_module(self, **kwargs: t.Any) -> dict[str, t.Any]:
        principal = kwargs["assignee_object_id"].strip()
        if not GUID_RE.match(principal):
            self.fail(f"assignee_object_id must be an object id (a GUID), got {principal!r}")
        guid = role_guid(kwargs["role_definition_id"].strip())
        if not guid:
            self.fail(
                "role_definition_id must be a role definition GUID or its full id "
                f"(.../providers/Microsoft.Authorization/roleDefinitions/<guid>), got {kwargs['role_definition_id']!r}"
            )
        scope = normalized_scope(kwargs["scope"])
        if scope == "/":
            self.fail("scope must be a resource id, got an empty one")
        role_id = full_role_definition_id(kwargs["role_definition_id"].strip(), scope, self.subscription_id)
        self.results.update(scope=scope, role_definition_id=role_id, principal_type=kwargs["principal_type"] or "")
        self.arm = arm_client(self.azure_auth, kwargs["azure_retry_timeout"])
        self.api = {"api-version": kwargs["api_version"]}
        what = f"role {guid} for {kwargs['principal_type'] or 'principal'} {principal} at {scope}"
        try:
            existing = matching(self.list_assignments(scope, principal), scope, guid)
            if kwargs["state"] == "present":
                self.ensure_present(existing, scope, principal, role_id, kwargs, what)
            else:
                self.ensure_absent(existing)
        except AzureRestError as exc:
            self.fail(f"role assignment of {what} failed: {exc}{hint(exc, kwargs['principal_type'])}", **failure(exc))
        summary = self.arm.retry_summary()
        if summary:
            self.module.warn(f"role assignment of {what}: {summary}")
        return self.results

    def list_assignments(self, scope: str, principal: str) -> list[dict[str, t.Any]]:
        params = dict(self.api)
        params["$filter"] = f"principalId eq '{principal.lower()}'"
        return list(self.arm.list_all(f"{scope}/providers/Microsoft.Authorization/roleAssignments", params=params))

    def ensure_present(
        self,
        existing: list[dict[str, t.Any]],
        scope: str,
        principal: str,
        role_id: str,
        params: dict[str, t.Any],
        what: str,
    ) -> None:
        if existing:
            self.results.update(id=existing[0].get("id", ""), principal_type=describe(existing[0])["principal_type"])
            return
        wanted = dict(
            scope=scope,
            principal_id=principal.lower(),
            principal_type=params["principal_type"],
            role_definition_id=role_id,
        )
        self.results["changed"] = True
        if self.module._diff:
            self.results["diff"] = dict(before={}, after=wanted)
        if self.check_mode:
            return
        name = str(uuid.uuid4())
        url = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        body: dict[str, t.Any] = {"properties": {"roleDefinitionId": role_id, "principalId": principal.lower()}}
        if params["principal_type"]:
            body["properties"]["principalType"] = params["principal_type"]
        started = self.arm.clock()
        delay = PRINCIPAL_RETRY_FIRST
        last: AzureRestError | None = None
        while True:
            try:
                created = self.arm.request("PUT", url, params=self.api, body=body, ok=(200, 201)).body or {}
                self.results["id"] = created.get("id") or url
                break
            except AzureRestError as exc:
                if exc.status == 409 and exc.code == "RoleAssignmentExists":
                    # Made meanwhile by another run, or by an attempt of ours whose answer was lost
                    # (then the PUT was retried, and this run did make the change).
                    self.results["changed"] = exc.attempts > 1
                    if not self.results["changed"]:
                        self.results.pop("diff", None)
                    again = matching(self.list_assignments(scope, principal), scope, role_guid(role_id))
                    self.results["id"] = again[0].get("id", "") if again else ""
                    break
                if exc.status != 400 or exc.code != "PrincipalNotFound":
                    raise
                last = exc
            waited = self.arm.clock() - started
            remaining = params["principal_timeout"] - waited
            kind = params["principal_type"] or "user, group or service principal"
            if remaining <= 0:
                self.results["waited_for_principal"] = round(waited, 1)
                self.fail(
                    f"role assignment of {what}: Azure still answers PrincipalNotFound after {waited:.0f}s "
                    f"(principal_timeout is {params['principal_timeout']}s). Check that {principal} is the object id "
                    f"(not the client id) of a {kind} in this tenant; a principal created moments "
                    f"ago can take a while to replicate ({REPLICATION_DOC}). Azure said: {last.detail if last else ''}",
                    status=400,
                    error_code="PrincipalNotFound",
                    waited_for_principal=round(waited, 1),
                )
            self.arm.sleep(min(delay, remaining))
            delay = min(delay * 2, PRINCIPAL_RETRY_MAX)
        waited = self.arm.clock() - started
        if last is not None:
            self.results["waited_for_principal"] = round(waited, 1)
            self.module.warn(
                f"role assignment of {what}: waited {waited:.0f}s for Azure to know principal {principal} "
                f"(it answered PrincipalNotFound: a new service principal or managed identity takes a while to "
                f"replicate, {REPLICATION_DOC})"
            )

    def ensure_absent(self, existing: list[dict[str, t.Any]]) -> None:
        if not existing:
            return
        ids = [str(assignment.get("id", "")) for assignment in existing]
        self.results.update(changed=True, removed=ids, id=ids[0])
        if self.module._diff:
            self.results["diff"] = dict(before=describe(existing[0]), after={})
        if self.check_mode:
            return
        for assignment_id in ids:
            self.arm.request("DELETE", assignment_id, params=self.api, ok=(200, 204))


def hint(exc: AzureRestError, principal_type: str) -> str:
    if exc.code == "UnmatchedPrincipalType":
        return (
            f" (principal_type is {principal_type}: set it to the assignee's type; "
            "managed identities are ServicePrincipal)"
        )
    if exc.code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return (
            " (the identity running this needs Microsoft.Authorization/roleAssignments/write and delete on the scope, "
            "for example User Access Administrator or Role Based Access Control Administrator)"
        )
    return ""


def failure(exc: AzureRestError) -> dict[str, t.Any]:
    return dict(status=exc.status, error_code=exc.code, attempts=exc.attempts)


def main() -> None:
    RoleAssignment()


if __name__ == "__main__":
    main()
