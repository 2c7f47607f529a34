"""Entra ID's token endpoint and discovery, the bearer-token check, and ARM's cloud metadata.

* ``/{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/oauth2/v2.0/token``
  (client credentials; checks client id and secret);
* ``/metadata/endpoints`` (the 2019-05-01 list format), so azure.azcollection's
  ``cloud_environment`` can point every client here;
* every other request needs a bearer token this fake issued for that service's audience.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import typing as t

from .common import KEYVAULT_DNS, Answer, HttpError

if t.TYPE_CHECKING:
    from .server import FakeAzure


def metadata(fake: FakeAzure) -> list[dict[str, t.Any]]:
    return [
        {
            "name": "ZerotrustFakeCloud",
            "portal": fake.base_url,
            "authentication": {
                "loginEndpoint": fake.base_url,
                "audiences": [fake.base_url + "/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "media": fake.base_url,
            "graphAudience": fake.graph_url,
            "graph": fake.graph_url,
            "microsoftGraphResourceId": fake.graph_url + "/",
            "resourceManager": fake.base_url + "/",
            "gallery": fake.base_url,
            "batch": fake.base_url,
            "sqlManagement": fake.base_url,
            "vmImageAliasDoc": fake.base_url,
            "activeDirectoryDataLake": fake.base_url,
            "suffixes": {
                "keyVaultDns": KEYVAULT_DNS,
                "storage": "storage.fake.test",
                "acrLoginServer": "acr.fake.test",
                "sqlServerHostname": "sql.fake.test",
                "azureDataLakeStoreFileSystem": "dls.fake.test",
                "azureDataLakeAnalyticsCatalogAndJob": "dla.fake.test",
            },
        }
    ]


def openid_configuration(fake: FakeAzure, path: str) -> Answer:
    tenant = path.strip("/").split("/")[0]
    if tenant.lower() != fake.tenant_id:
        raise HttpError(400, "invalid_tenant", f"tenant {tenant} not found")
    base = f"{fake.base_url}/{tenant}"
    return Answer(
        200,
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{fake.base_url}/{tenant}/v2.0",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        },
    )


def token(fake: FakeAzure, path: str, form: dict[str, list[str]]) -> Answer:
    def one(name: str) -> str:
        return (form.get(name) or [""])[0]

    tenant = path.strip("/").split("/")[0]
    if tenant.lower() != fake.tenant_id:
        raise HttpError(400, "invalid_tenant", f"AADSTS90002: tenant {tenant} not found")
    if one("grant_type") != "client_credentials":
        raise HttpError(400, "unsupported_grant_type", "only client_credentials is faked")
    if one("client_id") != fake.client_id or not secrets.compare_digest(one("client_secret"), fake.client_secret):
        raise HttpError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    scope = one("scope")
    audience = scope[: -len(".default")] if scope.endswith(".default") else scope
    token = mint(fake, audience, fake.deployer_object_id, fake.client_id, list(fake.deployer_graph_roles))
    return Answer(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token})


def mint(fake: FakeAzure, audience: str, object_id: str, app_id: str, roles: list[str]) -> str:
    """An app-only access token with the claims Entra ID puts in one
    (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference): audience,
    tenant, the caller's object id and application id, ``idtyp`` ``app`` for an application and
    its application permissions in ``roles``. Unsigned: only this fake reads it."""
    now = int(time.time())
    claims: dict[str, t.Any] = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{fake.tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "tid": fake.tenant_id,
        "appid": app_id,
        "oid": object_id,
        "sub": object_id,
        "idtyp": "app",
        "ver": "1.0",
    }
    if roles:
        claims["roles"] = roles
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{encoded}.fake"


def authorize(fake: FakeAzure, header: str, audience: str, role: str) -> dict[str, t.Any]:
    """The token's claims, or 401 as the service answers a request without a valid token."""
    challenge = {"WWW-Authenticate": f'Bearer authorization="{fake.base_url}/{fake.tenant_id}", resource="{audience}"'}
    if not header.startswith("Bearer "):
        raise HttpError(401, "Unauthorized", "no bearer token", challenge)
    try:
        payload = header.split(" ", 1)[1].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise HttpError(401, "InvalidAuthenticationToken", "token is not from this fake", challenge) from exc
    if claims.get("aud", "").rstrip("/") != audience.rstrip("/"):
        raise HttpError(
            401, "InvalidAuthenticationTokenAudience", f"token audience {claims.get('aud')} is not {audience}"
        )
    return dict(claims)
