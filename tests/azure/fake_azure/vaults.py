"""ARM ``Microsoft.KeyVault/vaults``: GET and PUT with Azure's soft-delete and RBAC defaults, and
``accessPolicies/{add|replace|remove}``.

* A new vault gets its own data-plane server (:mod:`.keyvault`); its ``vaultUri`` is
  ``https://{name}.vault.fake.test:{port}/``, a name that resolves only some time after creation
  (``behaviour.vault_dns_lag``, published by the server).
* Vault names are global: a name another vault holds is 409 ``VaultAlreadyExists``
  (https://learn.microsoft.com/azure/key-vault/general/troubleshoot-azure-policy-for-key-vault and
  the name rules in https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftkeyvault:
  3-24 characters, letters, digits and dashes, starting with a letter, no consecutive dashes).
* Purge protection cannot be disabled once enabled, soft delete cannot be turned off
  (https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview).
* ``PUT {vault}/accessPolicies/{operationKind}`` (Vaults - Update Access Policy,
  https://learn.microsoft.com/rest/api/keyvault/keyvault/vaults/update-access-policy) with a
  VaultAccessPolicyParameters body: ``add`` merges each entry's permissions into the vault's entry
  for the same tenant, object and application (or appends it), ``replace`` replaces that entry's
  permissions, ``remove`` takes the listed permissions away (an entry left without any is
  removed). The answer echoes the request's policies; the other policies are kept, unlike a vault
  PUT, which replaces them all.
"""

from __future__ import annotations

import copy
import re
import typing as t

from .common import Answer, HttpError, get_resource
from .keyvault import Vault

if t.TYPE_CHECKING:
    from .server import FakeAzure

VAULT_NAME = re.compile(r"^(?!.*--)[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
PERMISSION_KINDS = ("keys", "secrets", "certificates", "storage")


def _vault_uri(fake: FakeAzure, name: str, port: int) -> str:
    register = getattr(fake, "register_vault_host", None)
    if callable(register):
        return str(register(name, port))
    return f"https://{name.lower()}.vault.fake.test:{port}/"


def handle(fake: FakeAzure, method: str, path: str, body: t.Any) -> Answer:
    if method == "GET":
        return get_resource(fake, path, "Microsoft.KeyVault/vaults")
    if method != "PUT":
        raise HttpError(501, "NotImplemented", f"The fake Azure does not implement {method} {path}")
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if not VAULT_NAME.match(name):
        raise HttpError(
            400,
            "VaultNameNotValid",
            f"The vault name '{name}' is invalid. A vault's name must be between 3-24 alphanumeric characters. "
            "The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens.",
        )
    props = copy.deepcopy(dict((body or {}).get("properties") or {}))
    existing = fake.resources.get(path.lower().rstrip("/"))
    if existing is None and name.lower() in fake.vaults:
        raise HttpError(409, "VaultAlreadyExists", f"The vault name '{name}' is already in use.")
    if existing and existing["properties"].get("enablePurgeProtection") and props.get("enablePurgeProtection") is False:
        raise HttpError(
            400,
            "BadRequest",
            'The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a vault '
            "is an irreversible action.",
        )
    if props.get("enableSoftDelete") is False and (existing is None or existing["properties"].get("enableSoftDelete")):
        raise HttpError(
            400,
            "BadRequest",
            'The property "enableSoftDelete" cannot be set to false. Enabling the soft delete for a vault is an '
            "irreversible action.",
        )
    if existing is None:
        server = fake.serve("keyvault", name.lower())
        port = server.server_address[1]
        fake.vaults[name.lower()] = Vault(name, server, _vault_uri(fake, name, port))
    vault = fake.vaults[name.lower()]
    props.setdefault("accessPolicies", [])
    props.setdefault("enableRbacAuthorization", True)
    props["enableSoftDelete"] = True
    props.setdefault("softDeleteRetentionInDays", 90)
    props.setdefault("publicNetworkAccess", "Enabled")
    props.setdefault("enabledForDeployment", False)
    props.setdefault("enabledForDiskEncryption", False)
    props.setdefault("enabledForTemplateDeployment", False)
    props.pop("hsmPoolResourceId", None)
    props.pop("privateEndpointConnections", None)
    props["vaultUri"] = vault.uri
    props["provisioningState"] = "Succeeded"
    resource = {
        "id": path.rstrip("/"),
        "name": name,
        "type": "Microsoft.KeyVault/vaults",
        "location": (body or {}).get("location", "westeurope"),
        "tags": (body or {}).get("tags") or {},
        "properties": props,
    }
    fake.resources[path.lower().rstrip("/")] = resource
    return Answer(200 if existing else 201, copy.deepcopy(resource))


def _same_entry(a: dict[str, t.Any], b: dict[str, t.Any]) -> bool:
    return all(
        str(a.get(member) or "").lower() == str(b.get(member) or "").lower()
        for member in ("tenantId", "objectId", "applicationId")
    )


def access_policies(fake: FakeAzure, path: str, body: t.Any) -> Answer:
    vault_path, operation = re.split(r"/accesspolicies/", path.rstrip("/"), flags=re.IGNORECASE)
    operation = operation.lower()
    vault = fake.resources.get(vault_path.lower())
    if vault is None:
        raise HttpError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.KeyVault/vaults/{vault_path.rsplit('/', 1)[-1]}' under resource group "
            f"'{vault_path.split('/')[4]}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )
    wanted = copy.deepcopy(((body or {}).get("properties") or {}).get("accessPolicies") or [])
    policies: list[dict[str, t.Any]] = vault["properties"].setdefault("accessPolicies", [])
    for entry in wanted:
        permissions = entry.get("permissions") or {}
        current = next((policy for policy in policies if _same_entry(policy, entry)), None)
        if operation == "add":
            if current is None:
                policies.append(copy.deepcopy(entry))
                continue
            held = current.setdefault("permissions", {})
            for kind in PERMISSION_KINDS:
                merged = list(held.get(kind) or [])
                merged += [p for p in permissions.get(kind) or [] if p.lower() not in {m.lower() for m in merged}]
                if merged:
                    held[kind] = merged
        elif operation == "replace":
            if current is None:
                policies.append(copy.deepcopy(entry))
            else:
                current["permissions"] = copy.deepcopy(permissions)
        elif current is not None:
            held = current.setdefault("permissions", {})
            for kind in PERMISSION_KINDS:
                removed = {p.lower() for p in permissions.get(kind) or []}
                held[kind] = [p for p in held.get(kind) or [] if p.lower() not in removed]
            if not any(held.get(kind) for kind in PERMISSION_KINDS):
                policies.remove(current)
    answer = {
        "id": f"{vault['id']}/accessPolicies/",
        "type": "Microsoft.KeyVault/vaults/accessPolicies",
        "location": vault.get("location"),
        "properties": {"accessPolicies": wanted},
    }
    return Answer(200, answer)
