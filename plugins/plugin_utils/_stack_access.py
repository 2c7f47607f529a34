# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): who may enter and for how long — the
access part of the stack model (plugin_utils/_stack.py; the apps are in _stack_apps.py).

Deny by default: unless the inventory names who is allowed (allowed groups or app roles, app
role assignments on aks, per-app allowed groups) or opts out explicitly
(``zerotrust_aks_allow_all_tenant_users``), the stack refuses to deploy, because oauth2-proxy
would let in every account the issuer signs in (on Entra: every member and B2B guest).
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils import _validation as v

PRINCIPAL_TYPES = ("Group", "User")
CLIENT_AUTH = ("secret", "federated")


def show(value: t.Any) -> str:
    return repr(value) if not isinstance(value, str) else f'"{value}"'


def _is_bool(value: t.Any) -> bool:
    return isinstance(value, bool)


def string_list(
    errors: list[str], name: str, value: t.Any, check: t.Callable[[t.Any], bool], allowed: str
) -> list[str]:
    """A list of unique strings, each passing ``check``; one message per bad item."""
    if not isinstance(value, list):
        errors.append(f"{name} must be a list of {allowed}; got {show(value)}.")
        return []
    good: list[str] = []
    for index, item in enumerate(value):
        if not check(item):
            errors.append(f"{name}[{index}] must be {allowed}; got {show(item)}.")
        elif item in good:
            errors.append(f"{name}[{index}] repeats {show(item)}.")
        else:
            good.append(item)
    return good


GROUP_ALLOWED = "a group or app role value (no commas, no surrounding blanks)"


def session(errors: list[str], inputs: t.Mapping[str, t.Any]) -> dict[str, str]:
    lifetime = inputs.get("zerotrust_aks_session_lifetime")
    refresh = inputs.get("zerotrust_aks_session_refresh")
    for name, value in (("zerotrust_aks_session_lifetime", lifetime), ("zerotrust_aks_session_refresh", refresh)):
        if not v.is_positive_go_duration(value):
            errors.append(
                f"{name} must be a Go duration longer than zero, such as 8h, 90m or 1h30m; got {show(value)}."
            )
    lifetime_s, refresh_s = v.go_duration_seconds(lifetime), v.go_duration_seconds(refresh)
    if lifetime_s and refresh_s and refresh_s >= lifetime_s:
        errors.append(
            f"zerotrust_aks_session_refresh ({refresh}) must be shorter than zerotrust_aks_session_lifetime "
            f"({lifetime}): oauth2-proxy re-checks the session with the issuer every refresh period."
        )
    return {"lifetime": str(lifetime), "refresh": str(refresh)}


def _app_roles(errors: list[str], value: t.Any) -> list[dict[str, str]]:
    name = "zerotrust_aks_app_roles"
    if not isinstance(value, list):
        errors.append(f"{name} must be a list of {{value, display_name, description}}; got {show(value)}.")
        return []
    roles: list[dict[str, str]] = []
    for index, role in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(role, t.Mapping):
            errors.append(f"{where} must be a mapping with value, display_name and description; got {show(role)}.")
            continue
        unknown = sorted(set(role) - {"value", "display_name", "description"})
        if unknown:
            errors.append(
                f"{where} has unknown fields {', '.join(unknown)}; allowed: value, display_name, description."
            )
        if not v.is_app_role_value(role.get("value")):
            errors.append(
                f"{where}.value must be an app role value (1-120 characters, no spaces or commas, not starting "
                f"with a dot), such as colors.user; got {show(role.get('value'))}."
            )
            continue
        if any(known["value"] == role["value"] for known in roles):
            errors.append(f"{where}.value repeats {show(role['value'])}.")
            continue
        display = role.get("display_name", role["value"])
        if not isinstance(display, str) or not display.strip():
            errors.append(f"{where}.display_name must be a non-empty string; got {show(display)}.")
            continue
        description = role.get("description", display)
        if not isinstance(description, str) or not description.strip():
            errors.append(f"{where}.description must be a non-empty string; got {show(description)}.")
            continue
        roles.append({"value": role["value"], "display_name": display, "description": description})
    return roles


def _assignments(errors: list[str], value: t.Any, role_values: list[str]) -> list[dict[str, str]]:
    name = "zerotrust_aks_app_role_assignments"
    if not isinstance(value, list):
        errors.append(f"{name} must be a list of {{principal_id, principal_type, role}}; got {show(value)}.")
        return []
    result: list[dict[str, str]] = []
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(item, t.Mapping):
            errors.append(f"{where} must be a mapping with principal_id, principal_type and role; got {show(item)}.")
            continue
        unknown = sorted(set(item) - {"principal_id", "principal_type", "role"})
        if unknown:
            errors.append(
                f"{where} has unknown fields {', '.join(unknown)}; allowed: principal_id, principal_type, role."
            )
        principal_id = item.get("principal_id")
        principal_type = item.get("principal_type", "Group")
        role = item.get("role", role_values[0] if len(role_values) == 1 else None)
        ok = True
        if not v.is_guid(principal_id):
            errors.append(
                f"{where}.principal_id must be the object id (a GUID) of a group or user; got {show(principal_id)}."
            )
            ok = False
        if principal_type not in PRINCIPAL_TYPES:
            errors.append(
                f"{where}.principal_type must be one of {', '.join(PRINCIPAL_TYPES)}; got {show(principal_type)}."
            )
            ok = False
        if role not in role_values:
            allowed = ", ".join(role_values) or "none: zerotrust_aks_app_roles is empty"
            errors.append(
                f"{where}.role must be the value of one of zerotrust_aks_app_roles ({allowed}); got {show(role)}."
            )
            ok = False
        if not ok:
            continue
        entry = {"principal_id": str(principal_id).lower(), "principal_type": principal_type, "role": role}
        if entry in result:
            errors.append(f"{where} repeats the assignment of {principal_id} to {role}.")
            continue
        result.append(entry)
    return result


def authorization(errors: list[str], inputs: t.Mapping[str, t.Any], platform: t.Any) -> dict[str, t.Any]:
    """The global authorization rule (``configured`` is completed by :func:`finish`)."""
    claim = inputs.get("zerotrust_aks_groups_claim", "")
    if claim in ("", None):
        claim = "roles" if platform == "aks" else "groups"
    elif not v.is_claim_name(claim):
        errors.append(
            "zerotrust_aks_groups_claim must be empty (roles on aks, groups on local) or a claim name such as "
            f"roles or groups; got {show(claim)}."
        )
    allowed = string_list(
        errors,
        "zerotrust_aks_allowed_groups",
        inputs.get("zerotrust_aks_allowed_groups", []),
        v.is_group_value,
        GROUP_ALLOWED,
    )
    domains = string_list(
        errors,
        "zerotrust_aks_email_domains",
        inputs.get("zerotrust_aks_email_domains", ["*"]),
        v.is_email_domain,
        '"*" or a DNS name such as example.com',
    )
    if isinstance(inputs.get("zerotrust_aks_email_domains"), list) and not inputs["zerotrust_aks_email_domains"]:
        errors.append(
            'zerotrust_aks_email_domains must list at least one domain ("*" for any): '
            "with none, oauth2-proxy refuses everyone."
        )
    allow_all = inputs.get("zerotrust_aks_allow_all_tenant_users", False)
    required = inputs.get("zerotrust_aks_app_role_assignment_required", True)
    for name, value in (
        ("zerotrust_aks_allow_all_tenant_users", allow_all),
        ("zerotrust_aks_app_role_assignment_required", required),
    ):
        if not _is_bool(value):
            errors.append(f"{name} must be true or false; got {show(value)}.")
    roles = _app_roles(errors, inputs.get("zerotrust_aks_app_roles", []))
    role_values = [role["value"] for role in roles]
    assignments = _assignments(errors, inputs.get("zerotrust_aks_app_role_assignments", []), role_values)
    if platform != "aks" and assignments:
        errors.append(
            "zerotrust_aks_app_role_assignments applies to the aks platform only (Entra app roles); on local, "
            "list the groups in zerotrust_aks_allowed_groups."
        )
    # On aks the roles claim holds the app role values of the user's assignments: with no
    # allowed groups given, any of the declared roles lets the user in.
    effective = allowed or (role_values if platform == "aks" and claim == "roles" else [])
    # Entra refuses users without an assignment itself when assignment is required; with the
    # roles claim, oauth2-proxy refuses users without a role.
    by_assignment = platform == "aks" and bool(assignments) and (required is True or (claim == "roles" and not allowed))
    return {
        "groups_claim": claim,
        "allowed_groups": effective,
        "email_domains": domains,
        "allow_all_tenant_users": allow_all is True,
        "app_roles": roles,
        "assignment_required": required is True,
        "assignments": assignments,
        "configured": allow_all is True or bool(allowed) or by_assignment,
    }


def client_auth(errors: list[str], inputs: t.Mapping[str, t.Any], platform: t.Any, identity_mode: t.Any) -> str:
    value = inputs.get("zerotrust_aks_client_auth", "secret")
    if value not in CLIENT_AUTH:
        errors.append(f"zerotrust_aks_client_auth must be one of {', '.join(CLIENT_AUTH)}; got {show(value)}.")
    elif value == "federated" and platform != "aks":
        errors.append(
            "zerotrust_aks_client_auth federated needs the aks platform (Entra federated credentials); "
            "on local use secret."
        )
    elif value == "federated" and identity_mode != "workload":
        errors.append(
            "zerotrust_aks_client_auth federated needs zerotrust_aks_identity_mode workload: oauth2-proxy signs in "
            "to Entra with the token Workload Identity projects into its pod."
        )
    return str(value)


def undeclared_roles(authz: t.Mapping[str, t.Any], app_list: list[dict[str, t.Any]], platform: t.Any) -> list[str]:
    """On aks with the roles claim, a value that is no declared app role is in nobody's token."""
    if platform != "aks" or authz["groups_claim"] != "roles":
        return []
    declared = {role["value"] for role in authz["app_roles"]}
    where = [("zerotrust_aks_allowed_groups", authz["allowed_groups"])]
    where += [(f"allowed_groups of {app['name']}", app["allowed_groups"]) for app in app_list]
    return [
        f"{name} lists {value}, which is not one of zerotrust_aks_app_roles: with the roles claim only the app roles "
        "of the registration reach the token, so nobody matches it (declare it, or use zerotrust_aks_groups_claim: "
        "groups for group object ids)."
        for name, values in where
        for value in values
        if value not in declared
    ]


def finish(errors: list[str], authz: dict[str, t.Any], app_list: list[dict[str, t.Any]], purpose: t.Any) -> None:
    """Deny by default: refuse a stack in which somebody could reach an app without any rule."""
    global_rule = authz["configured"]
    unguarded = [app["name"] for app in app_list if not app["allowed_groups"]]
    authz["configured"] = global_rule or (bool(app_list) and not unguarded)
    if authz["configured"] or purpose != "apply":
        return
    claim = authz["groups_claim"]
    role_values = [role["value"] for role in authz["app_roles"]] or ["colors.user"]
    roles = ", ".join(role_values)
    apps_note = f" (apps without allowed_groups: {', '.join(unguarded)})" if unguarded and app_list else ""
    errors.append(
        "Nobody is allowed in yet: the inventory does not say who may enter (signing in is not enough: on Entra "
        f"every member and guest of the tenant can sign in){apps_note}. Allow people with one of: "
        f"zerotrust_aks_allowed_groups: [<value of the {claim} claim>] (on aks an app role value such as "
        f"{role_values[0]}, or a group object id with zerotrust_aks_groups_claim: groups); "
        "on aks, zerotrust_aks_app_role_assignments: [{principal_id: <group object id>, principal_type: Group, "
        f"role: <one of {roles}>}}] (with zerotrust_aks_app_role_assignment_required: true); allowed_groups on "
        "every entry of zerotrust_aks_apps (and zerotrust_aks_demo_apps: false, or a global rule, for the demo "
        "app); or, to let everybody in as before, zerotrust_aks_allow_all_tenant_users: true."
    )
