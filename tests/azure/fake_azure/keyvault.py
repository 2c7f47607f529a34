"""Key Vault data plane, one server per vault (its ``vaultUri``).

secrets GET/PUT/PATCH/DELETE, deletedsecrets GET and recover (the secret answers 404 once after
recovery, as recovery is asynchronous in Azure).
"""

from __future__ import annotations

import datetime as dt
import typing as t
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from .common import Answer, HttpError


@dataclass
class Vault:
    name: str
    server: ThreadingHTTPServer
    uri: str
    secrets: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    deleted: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    recovering: set[str] = field(default_factory=set)


def _bundle(vault: Vault, name: str, version: dict[str, t.Any]) -> dict[str, t.Any]:
    bundle = {
        "value": version["value"],
        "id": f"{vault.uri}secrets/{name}/{version['version']}",
        "attributes": {
            "enabled": True,
            "created": version["created"],
            "updated": version["updated"],
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        },
        "tags": dict(version.get("tags") or {}),
    }
    if version.get("contentType") is not None:
        bundle["contentType"] = version["contentType"]
    return bundle


def handle(vault: Vault, method: str, path: str, body: t.Any) -> Answer:
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "secrets":
        name = parts[1]
        versions = vault.secrets.get(name)
        if method == "GET" and len(parts) == 2:
            if name in vault.recovering:
                vault.recovering.discard(name)
                versions = None
            if not versions:
                raise HttpError(
                    404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault."
                )
            return Answer(200, _bundle(vault, name, versions[-1]))
        if method == "PUT" and len(parts) == 2:
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
        if method == "PATCH" and len(parts) == 3 and versions:
            for version in versions:
                if version["version"] == parts[2]:
                    if "tags" in (body or {}):
                        version["tags"] = body["tags"]
                    if "contentType" in (body or {}):
                        version["contentType"] = body["contentType"]
                    bundle = _bundle(vault, name, version)
                    bundle.pop("value")
                    return Answer(200, bundle)
            raise HttpError(404, "SecretNotFound", f"version {parts[2]} not found")
        if method == "DELETE" and len(parts) == 2:
            if not versions:
                raise HttpError(
                    404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault."
                )
            vault.deleted[name] = vault.secrets.pop(name)
            bundle = _bundle(vault, name, vault.deleted[name][-1])
            bundle.pop("value")
            return Answer(200, dict(bundle, recoveryId=f"{vault.uri}deletedsecrets/{name}"))
    if len(parts) >= 2 and parts[0] == "deletedsecrets":
        name = parts[1]
        if name not in vault.deleted:
            raise HttpError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        if method == "GET" and len(parts) == 2:
            bundle = _bundle(vault, name, vault.deleted[name][-1])
            bundle.pop("value")
            return Answer(200, dict(bundle, recoveryId=f"{vault.uri}deletedsecrets/{name}"))
        if method == "POST" and parts[2:] == ["recover"]:
            vault.secrets[name] = vault.deleted.pop(name)
            vault.recovering.add(name)
            bundle = _bundle(vault, name, vault.secrets[name][-1])
            bundle.pop("value")
            return Answer(200, bundle)
    raise HttpError(501, "NotImplemented", f"no fake for {method} {path}")
