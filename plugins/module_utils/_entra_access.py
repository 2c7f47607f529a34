# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who may sign in through the app registration: app roles, their assignments and federated credentials.

This module is private to the collection: its names may change in any release. It holds the
decisions of the entra_application module that need no network, so unit tests can cover them.

Ownership rules (what the collection may change or remove), documented in roles/entra_app/README.md:

* An app role is the collection's when its id is the deterministic id of its value
  (:func:`app_role_id`). Roles with any other id (made in the portal, by another tool) are
  never changed or removed; a wanted value that already exists keeps the role's id, because
  Graph refuses to change or remove an enabled role.
* An assignment is the collection's when its id is recorded in a tag of the service principal
  (:func:`assignment_tag`). Only recorded assignments are ever deleted; an assignment made by hand
  satisfies an inventory entry that asks for it but is never recorded, so it stays when the entry
  goes (the module warns). Assignments to roles the collection does not manage are never touched.
* A retired collection role that unrecorded assignments still hold is disabled, not removed.
* Federated identity credentials and client secrets are the collection's when their name
  starts with the collection's prefix.
"""

from __future__ import annotations

import copy
import re
import typing as t
import uuid

from ansible_collections.zerotrust.aks.plugins.module_utils import _validation

# uuid5 namespace of the collection's app role ids: the same value gives the same id on every
# run and every controller, so a re-run finds the role it made without keeping any state.
APP_ROLE_NAMESPACE = uuid.uuid5(
    uuid.NAMESPACE_URL, "https://galaxy.ansible.com/ui/repo/published/zerotrust/aks/app-role"
)
MEMBER_TYPES = ("User", "Application")
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105 - an audience, not a password
# The same rule ARM documents for user-assigned identities' credentials; Graph's "URL friendly".
FIC_NAME = re.compile(r"^[A-Za-z0-9][-_A-Za-z0-9]{2,119}$")
# servicePrincipal.tags (https://learn.microsoft.com/graph/api/resources/serviceprincipal): a
# string collection, not nullable, that the collection shares with the portal and other tools;
# one tag per appRoleAssignment the collection created.
ASSIGNMENT_TAG_PREFIX = "zerotrust.aks/assignment="


def app_role_id(value: str) -> str:
    return str(uuid.uuid5(APP_ROLE_NAMESPACE, value))


def is_collection_role(role: dict[str, t.Any]) -> bool:
    return str(role.get("id", "")).lower() == app_role_id(str(role.get("value", "")))


def is_guid(value: t.Any) -> bool:
    return bool(_validation.is_guid(value))


def federated_credential_errors(item: dict[str, t.Any]) -> list[str]:
    """What Graph refuses in a federated identity credential
    (https://learn.microsoft.com/graph/api/resources/federatedidentitycredential): the name is at
    most 120 URL-friendly characters, the issuer a URL, and audiences hold exactly one value."""
    errors = []
    if not FIC_NAME.match(str(item.get("name", ""))):
        errors.append("name must be 3-120 letters, digits, - and _, starting with a letter or digit")
    if not str(item.get("issuer", "")).startswith("https://"):
        errors.append("issuer must be an https:// URL")
    if not str(item.get("subject", "")).strip():
        errors.append("subject must not be empty")
    if len(item.get("audiences") or [TOKEN_EXCHANGE_AUDIENCE]) != 1:
        errors.append("audiences must hold exactly one value")
    return errors


def app_role_errors(roles: list[dict[str, t.Any]]) -> list[str]:
    """What Graph would refuse in ``roles`` (https://learn.microsoft.com/graph/api/resources/approle)."""
    errors = []
    seen: set[str] = set()
    for index, role in enumerate(roles):
        value = role.get("value")
        if not _validation.is_app_role_value(value):
            errors.append(
                f"app_roles[{index}].value must be 1-120 ASCII letters, digits or symbols without spaces or commas, "
                f"not starting with a dot; got {value!r}"
            )
        elif value in seen:
            errors.append(f"app_roles[{index}].value {value!r} appears twice")
        seen.add(str(value))
        for name in ("display_name", "description"):
            if not str(role.get(name) or "").strip():
                errors.append(f"app_roles[{index}].{name} must not be empty")
        members = role.get("allowed_member_types") or ["User"]
        if not members or any(m not in MEMBER_TYPES for m in members):
            errors.append(f"app_roles[{index}].allowed_member_types must be a subset of {list(MEMBER_TYPES)}")
    return errors


def _graph_role(role: dict[str, t.Any], role_id: str) -> dict[str, t.Any]:
    return {
        "allowedMemberTypes": sorted(role.get("allowed_member_types") or ["User"]),
        "description": role["description"],
        "displayName": role["display_name"],
        "id": role_id,
        "isEnabled": True,
        "value": role["value"],
    }


def _writable(role: dict[str, t.Any]) -> dict[str, t.Any]:
    """A role as read, fit to send back: ``origin`` is read-only and "must not be included in any
    POST or PATCH request" (https://learn.microsoft.com/graph/api/resources/approle)."""
    return {k: copy.deepcopy(v) for k, v in role.items() if k != "origin"}


def _comparable(roles: t.Iterable[dict[str, t.Any]]) -> list[tuple[t.Any, ...]]:
    return sorted(
        (
            str(r.get("id", "")).lower(),
            r.get("value"),
            r.get("displayName"),
            r.get("description"),
            tuple(sorted(r.get("allowedMemberTypes") or [])),
            bool(r.get("isEnabled", True)),
        )
        for r in roles
    )


class AppRolePlan(t.NamedTuple):
    first: list[dict[str, t.Any]] | None  # appRoles to PATCH before assignments change; None: nothing
    last: list[dict[str, t.Any]] | None  # appRoles to PATCH after assignments to retired roles are gone
    final: list[dict[str, t.Any]]  # the application's appRoles afterwards
    declared_ids: dict[str, str]  # wanted value -> role id
    retired: list[dict[str, t.Any]]  # collection roles no longer wanted (removed)


def plan_app_roles(existing: list[dict[str, t.Any]], wanted: list[dict[str, t.Any]]) -> AppRolePlan:
    """The PATCH bodies of ``appRoles`` that bring ``existing`` to ``wanted``.

    ``appRoles`` is a collection Graph replaces as a whole, so each body carries every role.
    New roles must exist before users are assigned to them (``first``). Removing an enabled
    role is refused (``CannotDeleteOrUpdateEnabledEntitlement``), and a removed role would leave
    its assignments behind: a retired role is disabled in ``first`` and left out of ``last``,
    which is sent once its assignments are deleted.
    """
    by_value = {str(r.get("value")): r for r in existing}
    existing_ids = {str(r.get("id", "")).lower(): r for r in existing}
    declared_ids: dict[str, str] = {}
    declared: list[dict[str, t.Any]] = []
    wanted_values = {str(r["value"]) for r in wanted}
    for role in wanted:
        current = by_value.get(str(role["value"]))
        role_id = str(current["id"]) if current else app_role_id(role["value"])
        if not current and role_id.lower() in existing_ids:
            raise ValueError(
                f"app role id {role_id} (derived from {role['value']!r}) is taken by the role "
                f"{existing_ids[role_id.lower()].get('value')!r}; rename one of them"
            )
        declared_ids[str(role["value"])] = role_id
        declared.append(_graph_role(role, role_id))
    retired = [r for r in existing if is_collection_role(r) and str(r.get("value")) not in wanted_values]
    retired_ids = {str(r["id"]).lower() for r in retired}
    # Roles that are neither wanted nor the collection's stay exactly as they are.
    others = [
        _writable(r)
        for r in existing
        if str(r.get("value")) not in wanted_values and str(r.get("id", "")).lower() not in retired_ids
    ]
    final = others + declared
    if retired:
        first = final + [dict(_writable(r), isEnabled=False) for r in retired]
        return AppRolePlan(
            first if _comparable(first) != _comparable(existing) else None, final, final, declared_ids, retired
        )
    return AppRolePlan(final if _comparable(final) != _comparable(existing) else None, None, final, declared_ids, [])


def assignment_tag(assignment_id: str) -> str:
    return ASSIGNMENT_TAG_PREFIX + assignment_id


def recorded_assignment_ids(tags: t.Iterable[str]) -> set[str]:
    """Ids of the assignments the collection recorded in the service principal's ``tags``."""
    return {tag[len(ASSIGNMENT_TAG_PREFIX) :] for tag in tags if tag.startswith(ASSIGNMENT_TAG_PREFIX)}


def _pair(assignment: dict[str, t.Any]) -> tuple[str, str]:
    return str(assignment.get("principalId", "")).lower(), str(assignment.get("appRoleId", "")).lower()


class AssignmentPlan(t.NamedTuple):
    add: list[dict[str, str]]  # {principalId, appRoleId}
    remove: list[dict[str, t.Any]]  # recorded appRoleAssignment objects no longer wanted
    foreign: list[dict[str, t.Any]]  # unrecorded assignments to managed roles (never removed)
    foreign_unwanted: list[dict[str, t.Any]]  # those of them the inventory does not list (warned about)


def plan_assignments(
    existing: list[dict[str, t.Any]],
    wanted: list[dict[str, t.Any]] | None,
    *,
    role_ids: dict[str, str],
    managed_role_ids: t.Iterable[str],
    recorded: t.Iterable[str],
) -> AssignmentPlan:
    """Assignments to add and to delete so the managed roles hold what ``wanted`` lists.

    ``wanted`` items are ``{principal_id, role}`` (``role``: an app role value in ``role_ids``);
    ``None`` adds nothing and wants nothing (a retired role's assignments). Only assignments to
    ``managed_role_ids`` whose id is in ``recorded`` are ever removed: any other one, made by hand,
    satisfies an entry that asks for it and stays when the entry goes.
    """
    managed = {i.lower() for i in managed_role_ids}
    ours = set(recorded)
    want: set[tuple[str, str]] = set()
    add: list[dict[str, str]] = []
    have = {_pair(a) for a in existing}
    for item in wanted or []:
        pair = (str(item["principal_id"]).lower(), role_ids[item["role"]].lower())
        if pair in want:
            continue
        want.add(pair)
        if pair not in have:
            add.append({"principalId": pair[0], "appRoleId": role_ids[item["role"]]})
    to_managed = [a for a in existing if _pair(a)[1] in managed]
    remove = [a for a in to_managed if str(a.get("id")) in ours and _pair(a) not in want]
    foreign = [a for a in to_managed if str(a.get("id")) not in ours]
    return AssignmentPlan(add, remove, foreign, [a for a in foreign if _pair(a) not in want])


def planned_tags(
    tags: t.Iterable[str], *, existing: t.Iterable[dict[str, t.Any]], removed: t.Iterable[dict[str, t.Any]]
) -> list[str]:
    """The service principal's tags once ``removed`` are deleted, before new ids are appended.

    Every tag that is not the collection's stays, in its place. A recorded id whose assignment is
    gone (deleted in the portal, or by this run) loses its tag: nothing is left to own.
    """
    alive = {str(a.get("id")) for a in existing} - {str(a.get("id")) for a in removed}
    kept = []
    for tag in tags:
        if tag.startswith(ASSIGNMENT_TAG_PREFIX) and tag[len(ASSIGNMENT_TAG_PREFIX) :] not in alive:
            continue
        if tag not in kept:
            kept.append(tag)
    return kept


def held_retired_roles(plan: AppRolePlan, foreign: t.Iterable[dict[str, t.Any]]) -> dict[str, int]:
    """Retired roles that unrecorded assignments still hold: value -> how many hold it."""
    held: dict[str, int] = {}
    by_id = {str(r["id"]).lower(): str(r.get("value")) for r in plan.retired}
    for assignment in foreign:
        value = by_id.get(_pair(assignment)[1])
        if value is not None:
            held[value] = held.get(value, 0) + 1
    return held


def keep_retired_roles(plan: AppRolePlan, values: t.Iterable[str]) -> AppRolePlan:
    """``plan`` with the retired roles ``values`` left disabled instead of removed.

    A role removed while an assignment the collection did not make still holds it would leave
    that assignment dangling: it stays, disabled, until someone removes the assignment in Entra.
    """
    keep = set(values)
    if not keep or plan.last is None:
        return plan
    kept = [dict(_writable(r), isEnabled=False) for r in plan.retired if str(r.get("value")) in keep]
    last = plan.last + kept
    after_first = plan.first if plan.first is not None else [_writable(r) for r in plan.retired + plan.final]
    same = _comparable(last) == _comparable(after_first)
    return AppRolePlan(plan.first, None if same else last, last, plan.declared_ids, plan.retired)


class CredentialPlan(t.NamedTuple):
    create: list[dict[str, t.Any]]
    update: list[tuple[dict[str, t.Any], dict[str, t.Any]]]  # (existing, PATCH body)
    remove: list[dict[str, t.Any]]


def plan_federated_credentials(
    existing: list[dict[str, t.Any]], wanted: list[dict[str, t.Any]], *, prefix: str
) -> CredentialPlan:
    """Federated identity credentials to create, correct and delete on the application.

    A credential's name is immutable in Graph, so it is the key; the collection's credentials are
    those whose name starts with ``prefix`` and only those are deleted when no longer wanted.
    """
    by_name = {str(c.get("name", "")).lower(): c for c in existing}
    create, update = [], []
    wanted_names = set()
    for item in wanted:
        body = {
            "name": item["name"],
            "issuer": item["issuer"],
            "subject": item["subject"],
            "audiences": list(item.get("audiences") or [TOKEN_EXCHANGE_AUDIENCE]),
            "description": item.get("description") or "",
        }
        wanted_names.add(item["name"].lower())
        current = by_name.get(item["name"].lower())
        if current is None:
            create.append(body)
            continue
        patch = {k: body[k] for k in ("issuer", "subject", "audiences") if current.get(k) != body[k]}
        if patch:
            update.append((current, patch))
    remove = [
        c
        for c in existing
        if str(c.get("name", "")).startswith(prefix) and str(c.get("name", "")).lower() not in wanted_names
    ]
    return CredentialPlan(create, update, remove)


def describe_roles(roles: t.Iterable[dict[str, t.Any]]) -> list[str]:
    return sorted(f"{r.get('value')} ({'enabled' if r.get('isEnabled', True) else 'disabled'})" for r in roles)


def describe_assignments(
    assignments: t.Iterable[dict[str, t.Any]], values_by_id: dict[str, str], recorded: t.Iterable[str] | None = None
) -> list[str]:
    """``<role>: <principal id>``; with ``recorded``, followed by ``(recorded)`` for the
    collection's own, ``(new)`` for one still to be made and ``(foreign)`` for any other."""
    ours = None if recorded is None else set(recorded)
    described = []
    for a in assignments:
        role = values_by_id.get(str(a.get("appRoleId", "")).lower(), a.get("appRoleId"))
        text = f"{role}: {str(a.get('principalId')).lower()}"
        if ours is not None:
            text += " (new)" if "id" not in a else " (recorded)" if str(a["id"]) in ours else " (foreign)"
        described.append(text)
    return sorted(described)


def describe_credentials(
    credentials: t.Iterable[dict[str, t.Any]], updates: dict[str, dict[str, t.Any]] | None = None
) -> list[str]:
    described = []
    for credential in credentials:
        merged = dict(credential, **(updates or {}).get(str(credential.get("name")), {}))
        described.append(f"{merged.get('name')}: {merged.get('issuer')} {merged.get('subject')}")
    return sorted(described)
