"""Key Vault data plane, one server per vault (its ``vaultUri``), secrets only.

Routes (https://learn.microsoft.com/rest/api/keyvault/secrets): secrets list, GET (latest or one
version), versions list, PUT, PATCH (attributes of a version), DELETE; deletedsecrets list, GET,
recover (the secret answers 404 once after recovery, as recovery is asynchronous in Azure), purge.
Every request needs ``api-version``. Any other route answers 501.

Authorization of the caller (the token's ``oid``), decided before the secret is even looked up:

* a vault with ``enableRbacAuthorization`` asks Azure RBAC for the operation's data action at the
  secret's scope (``<vault id>/secrets/<name>``, or the vault for lists): Key Vault Secrets User
  reads, Secrets Officer writes, Administrator does everything, and a role assignment takes effect
  only after ``behaviour.rbac_propagation`` (https://learn.microsoft.com/azure/key-vault/general/rbac-guide;
  data actions from https://learn.microsoft.com/azure/role-based-access-control/permissions/security#microsoftkeyvault);
  a refusal is 403 ``Forbidden`` with innererror ``ForbiddenByRbac`` and the message naming the
  caller, the action and the lower-cased resource, as Key Vault words it;
* a vault without it reads the vault's access policies (``properties.accessPolicies``): the entry
  for the caller's object id in the token's tenant must list the permission (get, list, set,
  delete, recover, purge, or all) the REST reference names for the operation
  (https://learn.microsoft.com/azure/key-vault/general/assign-access-policy). An entry with an
  ``applicationId`` is a compound identity (a user through that application) and never matches an
  app-only token. A refusal is 403 ``Forbidden`` with innererror ``AccessDenied``: "Access denied.
  Caller was not found on any access policy." or "... does not have secrets <permission>
  permission on key vault ..." (the texts Key Vault returns; ``ForbiddenByPolicy`` is a different
  refusal, an access policy requiring on-behalf-of, not faked).

https://learn.microsoft.com/azure/key-vault/general/rest-error-codes: "HTTP 403 means that the
request was authenticated (it knows the requesting identity) but the identity does not have access
to the requested resource".
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from .common import Answer, HttpError

if t.TYPE_CHECKING:
    from .server import FakeAzure

# https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates#object-identifiers:
# names are 1-127 characters, letters, digits and dashes.
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
DATA_ACTION = "Microsoft.KeyVault/vaults/secrets/{}"


@dataclass
class Vault:
    name: str
    server: ThreadingHTTPServer
    uri: str
    secrets: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    deleted: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    recovering: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Operation:
    """What a request does: its RBAC data action and its access-policy permission."""

    data_action: str
    permission: str
    secret: str | None  # the secret it acts on (its scope), None for a list of the vault


def _operation(method: str, parts: list[str]) -> Operation | None:
    head, rest = parts[0] if parts else "", parts[1:]
    name = rest[0] if rest else None
    if head == "secrets":
        if method == "GET" and not rest:
            return Operation(DATA_ACTION.format("readMetadata/action"), "list", None)
        if method == "GET" and len(rest) == 2 and rest[1] == "versions":
            return Operation(DATA_ACTION.format("readMetadata/action"), "list", name)
        if method == "GET" and len(rest) in (1, 2):
            return Operation(DATA_ACTION.format("getSecret/action"), "get", name)
        if method == "PUT" and len(rest) == 1:
            return Operation(DATA_ACTION.format("setSecret/action"), "set", name)
        # Update Secret "requires the secrets/set permission" (REST reference).
        if method == "PATCH" and len(rest) in (1, 2):
            return Operation(DATA_ACTION.format("update/action"), "set", name)
        if method == "DELETE" and len(rest) == 1:
            return Operation(DATA_ACTION.format("delete"), "delete", name)
    if head == "deletedsecrets":
        if method == "GET" and not rest:
            return Operation(DATA_ACTION.format("readMetadata/action"), "list", None)
        if method == "GET" and len(rest) == 1:
            return Operation(DATA_ACTION.format("readMetadata/action"), "get", name)
        if method == "POST" and len(rest) == 2 and rest[1] == "recover":
            return Operation(DATA_ACTION.format("recover/action"), "recover", name)
        if method == "DELETE" and len(rest) == 1:
            return Operation(DATA_ACTION.format("purge/action"), "purge", name)
    return None


def vault_resource(fake: FakeAzure, vault: Vault) -> dict[str, t.Any]:
    suffix = f"/providers/microsoft.keyvault/vaults/{vault.name.lower()}"
    for key, resource in fake.resources.items():
        if key.endswith(suffix):
            return resource
    raise HttpError(404, "VaultNotFound", f"Vault {vault.name} was not found.")


def _caller(claims: dict[str, t.Any]) -> str:
    return f"appid={claims.get('appid')};oid={claims.get('oid')};iss=https://sts.windows.net/{claims.get('tid')}/"


def authorize(fake: FakeAzure, vault: Vault, operation: Operation, claims: dict[str, t.Any]) -> None:
    resource = vault_resource(fake, vault)
    props = resource.get("properties") or {}
    where = f"{vault.name};location={resource.get('location', 'westeurope')}"
    object_id = str(claims.get("oid") or "")
    if props.get("enableRbacAuthorization"):
        from . import rbac  # the ARM side's role evaluation

        scope = resource["id"] + (f"/secrets/{operation.secret}" if operation.secret else "")
        if rbac.has_action(fake, object_id, operation.data_action, scope):
            return
        raise HttpError(
            403,
            "Forbidden",
            "Caller is not authorized to perform action on resource.\r\n"
            "If role assignments, deny assignments or role definitions were changed recently, "
            "please observe propagation time.\r\n"
            f"Caller: {_caller(claims)}\r\n"
            f"Action: '{operation.data_action}'\r\n"
            f"Resource: '{scope.lower()}'\r\n"
            "Assignment: (not found)\r\n"
            "DenyAssignmentId: null\r\n"
            "DecisionReason: 'DeniedWithNoValidRBAC' \r\n"
            f"Vault: {where}\r\n",
            inner={"code": "ForbiddenByRbac"},
        )
    tenant = str(claims.get("tid") or "").lower()
    entries = [
        entry
        for entry in props.get("accessPolicies") or []
        if str(entry.get("objectId") or "").lower() == object_id.lower()
        and str(entry.get("tenantId") or "").lower() == tenant
        and not entry.get("applicationId")
    ]
    if not entries:
        raise HttpError(
            403,
            "Forbidden",
            f"Access denied. Caller was not found on any access policy.\r\nCaller: {_caller(claims)}\r\nVault: {where}",
            inner={"code": "AccessDenied"},
        )
    granted = {
        str(permission).lower()
        for entry in entries
        for permission in (entry.get("permissions") or {}).get("secrets") or []
    }
    if operation.permission in granted or "all" in granted:
        return
    raise HttpError(
        403,
        "Forbidden",
        f"The user, group or application '{_caller(claims)}' does not have secrets {operation.permission} "
        f"permission on key vault '{where}'. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125287",
        inner={"code": "AccessDenied"},
    )


def _attributes(version: dict[str, t.Any]) -> dict[str, t.Any]:
    return {
        "enabled": True,
        "created": version["created"],
        "updated": version["updated"],
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    }


def _bundle(vault: Vault, name: str, version: dict[str, t.Any]) -> dict[str, t.Any]:
    bundle = {
        "value": version["value"],
        "id": f"{vault.uri}secrets/{name}/{version['version']}",
        "attributes": _attributes(version),
        "tags": dict(version.get("tags") or {}),
    }
    if version.get("contentType") is not None:
        bundle["contentType"] = version["contentType"]
    return bundle


def _item(vault: Vault, name: str, version: dict[str, t.Any], with_version: bool) -> dict[str, t.Any]:
    """A SecretItem (lists): the id, attributes, tags and content type, never the value."""
    item = _bundle(vault, name, version)
    item.pop("value")
    if not with_version:
        item["id"] = f"{vault.uri}secrets/{name}"
    return item


def _not_found(name: str) -> HttpError:
    return HttpError(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault.")


def handle(
    fake: FakeAzure, vault: Vault, method: str, path: str, query: dict[str, str], body: t.Any, claims: dict[str, t.Any]
) -> Answer:
    parts = path.strip("/").split("/")
    operation = _operation(method, parts)
    if operation is None:
        raise HttpError(501, "NotImplemented", f"no fake for Key Vault {method} {path}")
    # Every Key Vault request names its api-version (https://learn.microsoft.com/rest/api/keyvault/).
    if not query.get("api-version"):
        raise HttpError(400, "BadParameter", "The 'api-version' query parameter is missing.")
    if operation.secret is not None and not SECRET_NAME.match(operation.secret):
        raise HttpError(400, "BadParameter", f"The request URI contains an invalid name: {operation.secret}")
    authorize(fake, vault, operation, claims)
    if parts[0] == "secrets":
        return _secrets(vault, method, parts[1:], body)
    return _deleted(vault, method, parts[1:])


def _secrets(vault: Vault, method: str, rest: list[str], body: t.Any) -> Answer:
    if not rest:
        items = [_item(vault, name, versions[-1], False) for name, versions in sorted(vault.secrets.items())]
        return Answer(200, {"value": items, "nextLink": None})
    name = rest[0]
    versions = vault.secrets.get(name)
    if method == "GET":
        if name in vault.recovering:
            vault.recovering.discard(name)
            versions = None
        if not versions:
            raise _not_found(name)
        if rest[1:] == ["versions"]:
            return Answer(200, {"value": [_item(vault, name, v, True) for v in versions], "nextLink": None})
        wanted = rest[1] if len(rest) == 2 and rest[1] else versions[-1]["version"]
        for version in versions:
            if version["version"] == wanted:
                return Answer(200, _bundle(vault, name, version))
        raise _not_found(f"{name}/{wanted}")
    if method == "PUT":
        if name in vault.deleted:
            raise HttpError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, "
                "and its name cannot be reused; "
                "in this state, the secret can only be recovered or purged.",
            )
        if not isinstance((body or {}).get("value"), str):
            raise HttpError(400, "BadParameter", "value is required")
        stamp = int(dt.datetime.now(dt.UTC).timestamp())
        version = {
            "version": uuid.uuid4().hex,
            "value": body["value"],
            "tags": body.get("tags") or {},
            "contentType": body.get("contentType"),
            "created": stamp,
            "updated": stamp,
        }
        vault.secrets.setdefault(name, []).append(version)
        return Answer(200, _bundle(vault, name, version))
    if method == "PATCH":
        if not versions:
            raise _not_found(name)
        wanted = rest[1] if len(rest) == 2 and rest[1] else versions[-1]["version"]
        for version in versions:
            if version["version"] == wanted:
                if "tags" in (body or {}):
                    version["tags"] = body["tags"]
                if "contentType" in (body or {}):
                    version["contentType"] = body["contentType"]
                version["updated"] = int(dt.datetime.now(dt.UTC).timestamp())
                bundle = _bundle(vault, name, version)
                bundle.pop("value")
                return Answer(200, bundle)
        raise _not_found(f"{name}/{wanted}")
    # DELETE (the only other operation _operation admits)
    if not versions:
        raise _not_found(name)
    vault.deleted[name] = vault.secrets.pop(name)
    bundle = _bundle(vault, name, vault.deleted[name][-1])
    bundle.pop("value")
    return Answer(200, dict(bundle, recoveryId=f"{vault.uri}deletedsecrets/{name}"))


def _deleted(vault: Vault, method: str, rest: list[str]) -> Answer:
    if not rest:
        items = [
            dict(_item(vault, name, versions[-1], False), recoveryId=f"{vault.uri}deletedsecrets/{name}")
            for name, versions in sorted(vault.deleted.items())
        ]
        return Answer(200, {"value": items, "nextLink": None})
    name = rest[0]
    if name not in vault.deleted:
        raise HttpError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
    if method == "GET":
        bundle = _bundle(vault, name, vault.deleted[name][-1])
        bundle.pop("value")
        return Answer(200, dict(bundle, recoveryId=f"{vault.uri}deletedsecrets/{name}"))
    if method == "DELETE":
        del vault.deleted[name]
        return Answer(204)
    # POST recover
    vault.secrets[name] = vault.deleted.pop(name)
    vault.recovering.add(name)
    bundle = _bundle(vault, name, vault.secrets[name][-1])
    bundle.pop("value")
    return Answer(200, bundle)
