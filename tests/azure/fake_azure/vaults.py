"""ARM ``Microsoft.KeyVault/vaults``: GET and PUT, with Azure's soft-delete and RBAC defaults.

A new vault gets its own data-plane server (:mod:`.keyvault`), whose URL is its ``vaultUri``.
"""

from __future__ import annotations

import copy
import typing as t

from .common import Answer, HttpError, get_resource
from .keyvault import Vault

if t.TYPE_CHECKING:
    from .server import FakeAzure


def handle(fake: FakeAzure, method: str, path: str, body: t.Any) -> Answer:
    if method == "GET":
        return get_resource(fake, path, "Microsoft.KeyVault/vaults")
    if method != "PUT":
        raise HttpError(501, "NotImplemented", f"no fake for {method} {path}")
    name = path.rstrip("/").rsplit("/", 1)[-1]
    props = dict((body or {}).get("properties") or {})
    for required in ("tenantId", "sku"):
        if required not in props:
            raise HttpError(400, "BadRequest", f"properties.{required} is required")
    existing = fake.resources.get(path.lower().rstrip("/"))
    if existing is None and name.lower() in fake.vaults:
        raise HttpError(409, "VaultAlreadyExists", f"The vault name '{name}' is already in use.")
    if existing and existing["properties"].get("enablePurgeProtection") and props.get("enablePurgeProtection") is False:
        raise HttpError(400, "BadRequest", "Purge protection cannot be disabled once enabled.")
    if existing is None:
        server = fake.serve("keyvault", name.lower())
        fake.vaults[name.lower()] = Vault(name, server, f"https://127.0.0.1:{server.server_address[1]}/")
    vault = fake.vaults[name.lower()]
    props.setdefault("accessPolicies", [])
    props.setdefault("enableRbacAuthorization", True)
    props["enableSoftDelete"] = props.get("enableSoftDelete", True) is not False
    props.setdefault("softDeleteRetentionInDays", 90)
    props.setdefault("publicNetworkAccess", "Enabled")
    props.setdefault("enabledForDeployment", False)
    props.setdefault("enabledForDiskEncryption", False)
    props.setdefault("enabledForTemplateDeployment", False)
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
