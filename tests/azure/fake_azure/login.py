"""Entra ID's token endpoint and discovery, the bearer-token check, and ARM's cloud metadata.

* ``/{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/oauth2/v2.0/token``
  (client credentials; checks client id and secret);
* the same for a user and password (AWX's user/password Azure credential, which azure.azcollection
  turns into azure-identity's ``UsernamePasswordCredential`` for the Azure CLI's public client in the
  ``organizations`` tenant): discovery of ``organizations``, MSAL's user realm discovery
  ``/common/userrealm/{user}``, the ``password`` and ``refresh_token`` grants, and user tokens
  (``idtyp`` ``user``) with an ID token and ``client_info``. Users are seeded with
  ``FakeAzure.add_password_user``; :func:`serve_user_realm` answers MSAL on port 443;
* ``/metadata/endpoints`` (the 2019-05-01 list format), so azure.azcollection's
  ``cloud_environment`` can point every client here;
* every other request needs a bearer token this fake issued for that service's audience.

Errors from the token endpoint have Entra's OAuth 2.0 shape (``error``, ``error_description``
starting with the AADSTS code, ``error_codes``), as
https://learn.microsoft.com/entra/identity-platform/reference-error-codes#handling-error-codes-in-your-application
shows, so clients report them as they would Entra's.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import threading
import time
import typing as t
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


# The Azure CLI's public client: azure.azcollection (azure_rm_common.py, AzureRMAuth) signs a user
# in with it when the credential names no client id, in the tenant ``organizations`` when it names
# no tenant (azure-identity's default too: UsernamePasswordCredential, tenant_id).
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
# The tenant-independent authorities (https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc,
# "Find your app's OpenID configuration document URI"). The password grant "only supports" a
# tenant-specific authority or ``organizations`` (https://learn.microsoft.com/entra/identity-platform/v2-oauth-ropc,
# "Important"); ``common`` is what MSAL's user realm discovery calls.
MULTI_TENANT = ("organizations", "common")
# MSAL adds these to every request (msal/application.py, _decorate_scope); the rest name the resource.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


@dataclasses.dataclass
class PasswordUser:
    """A work account that signs in with a password (the resource owner password grant)."""

    upn: str
    password: str
    object_id: str
    display_name: str
    refresh_tokens: set[str] = dataclasses.field(default_factory=set)


def oauth_error(status: int, error: str, code: int | None, description: str) -> Answer:
    """The token endpoint's error body: ``error``, ``error_description`` (``AADSTSnnnnn: ...``) and
    ``error_codes`` (https://learn.microsoft.com/entra/identity-platform/reference-error-codes)."""
    body: dict[str, t.Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {description}" if code else description,
        "error_codes": [code] if code else [],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
    return Answer(status, body)


def _tenant_of(path: str) -> str:
    return path.strip("/").split("/")[0].lower()


def openid_configuration(fake: FakeAzure, path: str) -> Answer:
    tenant = _tenant_of(path)
    if tenant != fake.tenant_id and tenant not in MULTI_TENANT:
        raise HttpError(400, "invalid_tenant", f"tenant {tenant} not found")
    base = f"{fake.base_url}/{tenant}"
    # For a tenant-independent authority the issuer keeps the ``{tenantid}`` placeholder: the
    # tenant is only known from the token (v2-protocols-oidc, "issuer").
    issuer_tenant = "{tenantid}" if tenant in MULTI_TENANT else tenant
    return Answer(
        200,
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{fake.base_url}/{issuer_tenant}/v2.0",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        },
    )


def user_realm(fake: FakeAzure, path: str) -> Answer:
    """MSAL's home realm discovery before a password grant (msal/authority.py, user_realm_discovery:
    ``GET /common/userrealm/{username}?api-version=1.0``; ``account_type`` ``Federated`` would send
    the password to the user's federation server, anything else to the token endpoint). Microsoft
    does not document this endpoint: the answer has the fields MSAL reads, with the values Entra
    sends for a cloud-only (``Managed``) account and for an unknown one (``Unknown``)."""
    username = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
    body: dict[str, t.Any] = {"ver": "1.0", "cloud_instance_name": "microsoftonline.com"}
    user = fake.password_users.get(username.lower())
    if user is None:
        body["account_type"] = "Unknown"
    else:
        body.update(
            account_type="Managed",
            domain_name=user.upn.split("@", 1)[-1],
            cloud_audience_urn="urn:federation:MicrosoftOnline",
        )
    return Answer(200, body)


def token(fake: FakeAzure, path: str, form: dict[str, list[str]]) -> Answer:
    def one(name: str) -> str:
        return (form.get(name) or [""])[0]

    tenant = _tenant_of(path)
    if tenant != fake.tenant_id and tenant not in MULTI_TENANT:
        # https://learn.microsoft.com/entra/identity-platform/reference-error-codes (AADSTS90002).
        return oauth_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
    grant = one("grant_type")
    if grant == "client_credentials":
        # The client credentials grant names the tenant ("The directory tenant the application plans
        # to operate against, in GUID or domain-name format": v2-oauth2-client-creds-grant-flow).
        if tenant != fake.tenant_id:
            return oauth_error(400, "invalid_request", None, f"client credentials need a tenant, not '{tenant}'")
        if one("client_id") != fake.client_id or not secrets.compare_digest(one("client_secret"), fake.client_secret):
            return oauth_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        audience = _audience(one("scope"))
        access = mint(fake, audience, fake.deployer_object_id, fake.client_id, list(fake.deployer_graph_roles))
        return Answer(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": access})
    if grant == "password":
        return _password_grant(fake, tenant, one)
    if grant == "refresh_token":
        return _refresh_grant(fake, tenant, one)
    return oauth_error(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'.")


def _audience(scope: str) -> str:
    """The resource of a ``{resource}/.default`` scope (the first one that is not an OIDC scope)."""
    wanted = [s for s in scope.split() if s not in RESERVED_SCOPES]
    first = wanted[0] if wanted else ""
    return first[: -len(".default")] if first.endswith(".default") else first


def _password_grant(fake: FakeAzure, tenant: str, one: t.Callable[[str], str]) -> Answer:
    """The resource owner password credentials grant (https://learn.microsoft.com/entra/identity-platform/v2-oauth-ropc):
    ``client_id``, ``scope``, ``username``, ``password``; a public client, so no secret."""
    client_id = one("client_id")
    if client_id != AZURE_CLI_CLIENT_ID:
        # reference-error-codes, AADSTS700016 (UnauthorizedClient_DoesNotMatchRequest).
        return oauth_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
        )
    user = fake.password_users.get(one("username").lower())
    if user is None:
        # reference-error-codes, AADSTS50034 (UserAccountNotFound).
        return oauth_error(
            400, "invalid_grant", 50034, f"The user account {one('username')} does not exist in the directory."
        )
    if not secrets.compare_digest(one("password").encode(), user.password.encode()):
        # reference-error-codes, AADSTS50126 (InvalidUserNameOrPassword); v2-oauth-ropc lists
        # ``invalid_grant`` for "The authentication failed".
        message = "Error validating credentials due to invalid username or password."
        return oauth_error(400, "invalid_grant", 50126, message)
    return _user_tokens(fake, user, client_id, one("scope"), one("client_info") == "1")


def _refresh_grant(fake: FakeAzure, tenant: str, one: t.Callable[[str], str]) -> Answer:
    """A refresh token for another resource (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token):
    MSAL uses the one the password grant returned when the same process asks for a second resource."""
    presented = one("refresh_token")
    user = next((u for u in fake.password_users.values() if presented in u.refresh_tokens), None)
    if user is None or one("client_id") != AZURE_CLI_CLIENT_ID:
        # reference-error-codes, AADSTS9002313 (invalid request: malformed or invalid).
        return oauth_error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
    return _user_tokens(fake, user, AZURE_CLI_CLIENT_ID, one("scope"), one("client_info") == "1")


# The delegated permissions (``scp``) of the Azure CLI's tokens per resource: ``user_impersonation``
# for Azure Resource Manager (https://learn.microsoft.com/rest/api/azure/#register-your-client-application-with-microsoft-entra-id)
# and Key Vault (https://learn.microsoft.com/azure/key-vault/general/authentication); for Microsoft
# Graph, Directory.AccessAsUser.All: the signed-in user's own directory rights
# (https://learn.microsoft.com/graph/permissions-reference#directoryaccessasuserall).
def _delegated_scopes(fake: FakeAzure, audience: str) -> str:
    if audience.rstrip("/") == fake.graph_url.rstrip("/"):
        return "Directory.AccessAsUser.All"
    return "user_impersonation"


def _user_tokens(fake: FakeAzure, user: PasswordUser, client_id: str, scope: str, client_info: bool) -> Answer:
    """The successful answer of v2-oauth-ropc: ``access_token`` for the resource, ``refresh_token``
    (``offline_access``), ``id_token`` (``openid``) and, when MSAL asks with ``client_info=1``, the
    ``client_info`` it keys its account cache on (``uid``, ``utid``: msal/token_cache.py)."""
    audience = _audience(scope)
    now = int(time.time())
    body: dict[str, t.Any] = {
        "token_type": "Bearer",
        "scope": " ".join(s for s in scope.split() if s != "offline_access"),
        "expires_in": 3600,
        "ext_expires_in": 3600,
    }
    if audience:
        body["access_token"] = mint_user(fake, audience, user, client_id)
    if "offline_access" in scope.split():
        refresh = secrets.token_urlsafe(32)
        user.refresh_tokens.add(refresh)
        body["refresh_token"] = refresh
    if "openid" in scope.split():
        # https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference: a v2.0 ID
        # token, audience the client, issuer {authority}/{tenant}/v2.0. azure-identity builds its
        # AuthenticationRecord from aud, iss, tid, sub and preferred_username
        # (azure/identity/_internal/interactive.py, _build_auth_record).
        body["id_token"] = _encode(
            {
                "aud": client_id,
                "iss": f"{fake.base_url}/{fake.tenant_id}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "name": user.display_name,
                "oid": user.object_id,
                "preferred_username": user.upn,
                "sub": _pairwise_subject(user.object_id, client_id),
                "tid": fake.tenant_id,
                "ver": "2.0",
            }
        )
    if client_info:
        info = json.dumps({"uid": user.object_id, "utid": fake.tenant_id}).encode()
        body["client_info"] = base64.urlsafe_b64encode(info).decode().rstrip("=")
    return Answer(200, body)


def _pairwise_subject(object_id: str, client_id: str) -> str:
    """``sub`` is "a pairwise identifier - it's unique to a particular application ID"
    (access-token-claims-reference): the same user has another one in another client."""
    return base64.urlsafe_b64encode(uuid.uuid5(uuid.UUID(client_id), object_id).bytes).decode().rstrip("=")


def mint_user(fake: FakeAzure, audience: str, user: PasswordUser, client_id: str) -> str:
    """A delegated access token for a user (v1.0 format, as ARM, Graph and Key Vault get them), with
    the claims https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
    lists for one: ``idtyp`` ``user``, ``upn`` and ``unique_name``, ``scp`` (delegated permissions,
    no ``roles``), ``oid``, the tenant and the client's ``appid``."""
    now = int(time.time())
    return _encode(
        {
            "aud": audience,
            "iss": f"https://sts.windows.net/{fake.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "tid": fake.tenant_id,
            "appid": client_id,
            "appidacr": "0",  # a public client: no client authentication
            "oid": user.object_id,
            "sub": _pairwise_subject(user.object_id, client_id),
            "upn": user.upn,
            "unique_name": user.upn,
            "name": user.display_name,
            "scp": _delegated_scopes(fake, audience),
            "amr": ["pwd"],
            "idtyp": "user",
            "ver": "1.0",
        }
    )


def serve_user_realm(fake: FakeAzure) -> ThreadingHTTPServer:
    """Answer on https://127.0.0.1:443 as the fake's main port does.

    MSAL Python sends the user realm discovery to the authority's host *without its port*
    (msal/authority.py, user_realm_discovery, ``https://{netloc}/common/userrealm/...`` with the
    host only: AzureAD/microsoft-authentication-library-for-python#259; #484 fixed the port for
    tenant discovery only), so with the fake's authority ``https://127.0.0.1:{port}`` the password
    grant starts with a request to port 443. Needs the right to bind it (root or
    ``net.ipv4.ip_unprivileged_port_start``); raises ``OSError`` otherwise. Stops with the fake.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: t.Any) -> None:
            return

        def do_GET(self) -> None:
            fake.handle(self, "main", "")

        do_POST = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 443), Handler)
    server.daemon_threads = True
    server.socket = fake.context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="fake-azure-user-realm", daemon=True).start()
    fake.servers.append(server)
    return server


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
    return _encode(claims)


def _encode(claims: dict[str, t.Any]) -> str:
    """An unsigned JWT (``alg`` ``none``): only this fake and the collection's claim reading see it."""
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
