"""Azure RBAC as ARM and Key Vault evaluate it: built-in roles, assignments, propagation, principals.

* A principal may perform an action at a scope when a role assigned to it at that scope or at an
  ancestor of it lists the action in ``actions`` (``dataActions`` for data-plane actions) and not
  in ``notActions`` (``notDataActions``); ``*`` is a wildcard, matching is case-insensitive
  (https://learn.microsoft.com/azure/role-based-access-control/role-definitions#actions and
  https://learn.microsoft.com/azure/role-based-access-control/overview#how-azure-rbac-determines-if-a-user-has-access-to-a-resource).
* A new assignment counts only ``behaviour.rbac_propagation`` seconds after it was made (Azure:
  "up to 10 minutes", https://learn.microsoft.com/azure/role-based-access-control/troubleshooting#symptom---role-assignment-changes-are-not-being-detected).
* Group membership is not modelled: only assignments to the principal itself count.

:func:`grant` seeds an assignment that is already in effect (the deployer's roles in a test fixture).
"""

from __future__ import annotations

import dataclasses
import re
import time
import typing as t
import uuid
import weakref

from .common import now_iso

if t.TYPE_CHECKING:
    from .server import FakeAzure

ROLE_ASSIGNMENTS = "/providers/microsoft.authorization/roleassignments/"


@dataclasses.dataclass(frozen=True)
class Role:
    id: str
    name: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def definition(self, subscription_id: str) -> dict[str, t.Any]:
        """The role definition as ARM returns it (RoleDefinition, 2022-04-01)."""
        return {
            "id": f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{self.id}",
            "name": self.id,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": self.name,
                "type": "BuiltInRole",
                "assignableScopes": ["/"],
                "permissions": [
                    {
                        "actions": list(self.actions),
                        "notActions": list(self.not_actions),
                        "dataActions": list(self.data_actions),
                        "notDataActions": list(self.not_data_actions),
                    }
                ],
            },
        }


# Key Vault data-plane roles share these control-plane actions (read the vault, its resource group
# and the role assignments), https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security
_KEY_VAULT_READ = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
)

# The built-in roles the collection and its tests use, with their documented ids and permissions:
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/general (Owner,
# Contributor, Reader, User Access Administrator, Role Based Access Control Administrator) and
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security (Key Vault).
BUILT_IN_ROLES: tuple[Role, ...] = (
    Role("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner", actions=("*",)),
    Role(
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor",
        actions=("*",),
        not_actions=(
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ),
    ),
    Role("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", actions=("*/read",)),
    Role(
        "18d7d88d-d35e-4fb5-a5c3-7773c6a72009",
        "User Access Administrator",
        actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
    ),
    Role(
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        "Role Based Access Control Administrator",
        actions=(
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ),
    ),
    Role(
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        "Key Vault Administrator",
        actions=_KEY_VAULT_READ,
        data_actions=("Microsoft.KeyVault/vaults/*",),
    ),
    Role(
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "Key Vault Secrets Officer",
        actions=_KEY_VAULT_READ,
        data_actions=("Microsoft.KeyVault/vaults/secrets/*",),
    ),
    Role(
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
        data_actions=(
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ),
    ),
)
ROLES_BY_ID = {role.id: role for role in BUILT_IN_ROLES}
ROLES_BY_NAME = {role.name.lower(): role for role in BUILT_IN_ROLES}

# Key Vault's data actions for secrets (the Microsoft.KeyVault operations list marks them
# "DataAction": https://learn.microsoft.com/azure/role-based-access-control/permissions/security#microsoftkeyvault).
# Control-plane secrets/read and secrets/write (ARM's vaults/secrets resource) are not among them.
_DATA_ACTION = re.compile(
    r"microsoft\.keyvault/vaults/(secrets|deletedsecrets)/"
    r"(delete|getsecret/action|setsecret/action|readmetadata/action|update/action|backup/action|"
    r"restore/action|recover/action|purge/action|read/action)$",
    re.IGNORECASE,
)


def role_for_definition_id(definition_id: str) -> Role | None:
    """The built-in role a ``roleDefinitionId`` (full id or bare GUID) names, if any."""
    guid = (definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()
    full_id = r"(/subscriptions/[^/]+)?/providers/microsoft\.authorization/roledefinitions/[^/]+"
    if "/" in (definition_id or "").strip("/") and not re.fullmatch(full_id, definition_id.rstrip("/"), flags=re.I):
        return None
    return ROLES_BY_ID.get(guid)


def definition_id(fake: FakeAzure, role_name: str) -> str:
    """The full roleDefinitionId of a built-in role, by name (``Key Vault Secrets Officer``)."""
    role = ROLES_BY_NAME[role_name.lower()]
    return f"/subscriptions/{fake.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role.id}"


def _matches(action: str, patterns: t.Iterable[str]) -> bool:
    return any(
        re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), action, flags=re.IGNORECASE)
        for pattern in patterns
    )


def is_data_action(action: str) -> bool:
    return bool(_DATA_ACTION.search(action))


def is_ancestor_or_self(scope: str, target: str) -> bool:
    scope, target = scope.lower().rstrip("/"), target.lower().rstrip("/")
    return not scope or target == scope or target.startswith(scope + "/")


# --- when assignments were made -----------------------------------------------------------------

_made: weakref.WeakKeyDictionary[t.Any, dict[str, float]] = weakref.WeakKeyDictionary()


def made_at(fake: FakeAzure, assignment_key: str) -> float:
    """When (time.monotonic) an assignment was made; seeded ones are in effect from the start."""
    return _made.get(fake, {}).get(assignment_key.lower(), float("-inf"))


def record_made(fake: FakeAzure, assignment_key: str, when: float | None = None) -> None:
    _made.setdefault(fake, {})[assignment_key.lower()] = time.monotonic() if when is None else when


def assignments(fake: FakeAzure) -> list[dict[str, t.Any]]:
    return [resource for key, resource in fake.resources.items() if ROLE_ASSIGNMENTS in key]


def effective_roles(fake: FakeAzure, principal_id: str, scope: str) -> list[Role]:
    """Roles of ``principal_id`` that apply at ``scope`` and have propagated."""
    now = time.monotonic()
    lag = float(getattr(getattr(fake, "behaviour", None), "rbac_propagation", 0.0))
    roles = []
    for assignment in assignments(fake):
        props = assignment.get("properties") or {}
        if str(props.get("principalId", "")).lower() != principal_id.lower():
            continue
        if not is_ancestor_or_self(str(props.get("scope", "")), scope):
            continue
        if now - made_at(fake, assignment["id"]) < lag:
            continue
        role = role_for_definition_id(str(props.get("roleDefinitionId", "")))
        if role:
            roles.append(role)
    return roles


def has_action(fake: FakeAzure, principal_id: str, action: str, scope: str, *, data: bool | None = None) -> bool:
    """Whether ``principal_id`` may perform ``action`` at ``scope`` now.

    ``data`` says whether the action is a data action (checked against dataActions); by default
    Key Vault's secret data actions are recognised by name, every other action is a control-plane one.
    """
    data = is_data_action(action) if data is None else data
    for role in effective_roles(fake, principal_id, scope):
        allowed, denied = (role.data_actions, role.not_data_actions) if data else (role.actions, role.not_actions)
        if _matches(action, allowed) and not _matches(action, denied):
            return True
    return False


def grant(
    fake: FakeAzure, principal_id: str, role_name: str, scope: str, principal_type: str = "ServicePrincipal"
) -> str:
    """Assign a built-in role that is already in effect (no propagation wait); returns the assignment id."""
    name = str(uuid.uuid4())
    assignment_id = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name}"
    fake.resources[assignment_id.lower()] = {
        "id": assignment_id,
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": definition_id(fake, role_name),
            "principalId": principal_id,
            "principalType": principal_type,
            "scope": scope.rstrip("/"),
            "createdOn": now_iso(),
        },
    }
    record_made(fake, assignment_id, float("-inf"))
    return assignment_id


# --- principals ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Principal:
    """A directory object ARM role assignment can name (used when the server keeps no registry)."""

    type: str
    created: float


_own_principals: weakref.WeakKeyDictionary[t.Any, dict[str, Principal]] = weakref.WeakKeyDictionary()


def _principal_fields(value: t.Any) -> tuple[str, float]:
    if isinstance(value, dict):
        kind = value.get("type") or value.get("principalType") or value.get("principal_type")
        created = value.get("created", float("-inf"))
    elif isinstance(value, tuple):
        kind, created = value[0], value[1]
    else:
        kind = getattr(value, "type", None) or getattr(value, "principal_type", None) or getattr(value, "kind", None)
        created = getattr(value, "created", getattr(value, "created_at", float("-inf")))
    return str(kind or "ServicePrincipal"), float(created)


def principal(fake: FakeAzure, object_id: str) -> tuple[str, float] | None:
    """(type, creation time) of a principal the directory holds, None when there is none."""
    key = object_id.lower()
    registry = getattr(fake, "principals", None)
    if isinstance(registry, dict) and key in registry:
        return _principal_fields(registry[key])
    if key in _own_principals.get(fake, {}):
        found = _own_principals[fake][key]
        return found.type, found.created
    directory = getattr(fake, "directory", {}) or {}
    if key in directory:
        return str(directory[key].get("principalType", "User")), float("-inf")
    for sp_id in getattr(fake, "service_principals", {}) or {}:
        if sp_id.lower() == key:
            return "ServicePrincipal", float("-inf")
    if key == str(getattr(fake, "deployer_object_id", "")).lower():
        return "ServicePrincipal", float("-inf")
    return None


def principal_visible(fake: FakeAzure, object_id: str) -> bool:
    """Known and older than ``behaviour.principal_lag`` (replicated to where ARM looks it up)."""
    check = getattr(fake, "principal_visible", None)
    if callable(check) and isinstance(getattr(fake, "principals", None), dict):
        return bool(check(object_id))
    found = principal(fake, object_id)
    lag = float(getattr(getattr(fake, "behaviour", None), "principal_lag", 0.0))
    return found is not None and time.monotonic() - found[1] >= lag


def register_principal(fake: FakeAzure, object_id: str, principal_type: str = "ServicePrincipal") -> None:
    """A new principal (a managed identity's service principal), created now."""
    add = getattr(fake, "add_principal", None)
    if callable(add):
        add(object_id, principal_type)
        return
    _own_principals.setdefault(fake, {}).setdefault(object_id.lower(), Principal(principal_type, time.monotonic()))
