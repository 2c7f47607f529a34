"""FAKE Azure for the azure layer's tests: the narrowest HTTPS imitation of the documented REST APIs.

This is not an emulator and proves nothing about Azure itself. The candidate emulator
(Go module github.com/ioflux-org/armite) is not served by the Go module proxy (403,
"This module version is not available"), so everything the roles call is faked here,
from the public REST API references, and only as far as the roles use it:

* Entra ID token endpoint: ``/{tenant}/v2.0/.well-known/openid-configuration`` and
  ``/{tenant}/oauth2/v2.0/token`` (client credentials; checks client id and secret).
* ARM metadata ``/metadata/endpoints`` (the 2019-05-01 list format), so azure.azcollection's
  ``cloud_environment`` can point every client here.
* ARM: resource groups (GET), ``Microsoft.KeyVault/vaults`` (GET/PUT, soft delete defaults),
  ``Microsoft.Authorization/roleAssignments`` (list at subscription, GET/PUT at scope, 409
  ``RoleAssignmentExists`` on a duplicate like Azure), ``Microsoft.ManagedIdentity``
  userAssignedIdentities and their federatedIdentityCredentials (GET/PUT),
  ``Microsoft.ContainerService/managedClusters`` (GET/PUT as a long-running operation:
  200 + ``Azure-AsyncOperation``, ``InProgress`` once, then ``Succeeded``; the add-on
  identity appears when the add-on is enabled).
* Microsoft Graph v1.0 on its own port: applications (``$filter=displayName eq '...'``,
  POST, PATCH, addPassword, removePassword) and servicePrincipals (``$filter=appId eq '...'``, POST).
* Key Vault data plane, one port per vault (its ``vaultUri``): secrets GET/PUT/PATCH/DELETE,
  deletedsecrets GET and recover (the secret answers 404 once after recovery, as recovery
  is asynchronous in Azure).

Every request needs a bearer token this fake issued for that service's audience. Every
request is logged (``FakeAzure.log``) so tests can assert what was, and was not, written.
It listens on 127.0.0.1 only, on random ports, over TLS with a certificate signed by a CA
it makes (``ca_file``), and stops by itself after ``lifetime`` seconds.

Run ``python tests/azure/fake_azure.py --help`` to start it by hand.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import ipaddress
import json
import re
import secrets
import ssl
import threading
import typing as t
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEYVAULT_DNS = "vault.fake.test"
KEYVAULT_AUDIENCE = f"https://{KEYVAULT_DNS}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zerotrust-aks fake Azure CA")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@dataclass
class Answer:
    status: int
    body: t.Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Vault:
    name: str
    server: ThreadingHTTPServer
    uri: str
    secrets: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    deleted: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    recovering: set[str] = field(default_factory=set)


class FakeAzure:
    """The fake's state and servers. ``start()``, use, ``stop()`` (or wait for ``lifetime``)."""

    def __init__(
        self,
        workdir: Path,
        *,
        tenant_id: str,
        subscription_id: str,
        client_id: str,
        client_secret: str,
        lifetime: float = 1800.0,
    ) -> None:
        self.workdir = workdir
        self.tenant_id = tenant_id.lower()
        self.subscription_id = subscription_id.lower()
        self.client_id = client_id
        self.client_secret = client_secret
        self.deployer_object_id = str(uuid.uuid4())
        self.lifetime = lifetime
        self.lock = threading.RLock()
        self.log: list[dict[str, t.Any]] = []
        self.resource_groups: dict[str, dict[str, t.Any]] = {}
        self.resources: dict[str, dict[str, t.Any]] = {}  # lower-case ARM id -> body
        self.operations: dict[str, list[str]] = {}  # operation id -> remaining statuses
        self.pending: dict[str, dict[str, t.Any]] = {}  # operation id -> resource id and final body
        self.applications: dict[str, dict[str, t.Any]] = {}
        self.service_principals: dict[str, dict[str, t.Any]] = {}
        self.vaults: dict[str, Vault] = {}
        self.servers: list[ThreadingHTTPServer] = []
        self.ca_file, self.cert_file, self.key_file = make_tls(workdir / "tls")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert_file, self.key_file)
        self._timer: threading.Timer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def _serve(self, role: str, vault: str = "") -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: t.Any) -> None:
                return

            def _handle(self) -> None:
                fake.handle(self, role, vault)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = self.context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name=f"fake-azure-{role}", daemon=True).start()
        self.servers.append(server)
        return server

    def start(self) -> FakeAzure:
        self.main = self._serve("main")
        self.graph = self._serve("graph")
        self.base_url = f"https://127.0.0.1:{self.main.server_address[1]}"
        self.graph_url = f"https://127.0.0.1:{self.graph.server_address[1]}"
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()

    # --- seeding and inspection helpers for tests ---------------------------------------------

    def add_resource_group(self, name: str, location: str = "westeurope") -> None:
        rg_id = f"/subscriptions/{self.subscription_id}/resourceGroups/{name}"
        self.resource_groups[name.lower()] = {"id": rg_id, "name": name, "location": location, "properties": {}}

    def add_cluster(self, resource_group: str, name: str, location: str = "westeurope") -> str:
        """A managed cluster as the API returns it, with unrelated settings tests can check survive."""
        cluster_id = (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{name}"
        )
        self.resources[cluster_id.lower()] = {
            "id": cluster_id,
            "name": name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "location": location,
            "tags": {"owner": "platform-team"},
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()), "tenantId": self.tenant_id},
            "sku": {"name": "Base", "tier": "Free"},
            "properties": {
                "provisioningState": "Succeeded",
                "powerState": {"code": "Running"},
                "kubernetesVersion": "1.33.2",
                "currentKubernetesVersion": "1.33.2",
                "dnsPrefix": name,
                "fqdn": f"{name}-dns.hcp.{location}.azmk8s.io",
                "agentPoolProfiles": [
                    {"name": "system", "count": 2, "vmSize": "Standard_D2s_v5", "mode": "System", "osType": "Linux"}
                ],
                "addonProfiles": {"azurepolicy": {"enabled": True, "config": None}},
                "enableRBAC": True,
                "networkProfile": {"networkPlugin": "azure", "networkPolicy": "cilium"},
                "oidcIssuerProfile": {"enabled": False},
                "securityProfile": {},
            },
        }
        return cluster_id

    def resource(self, resource_id: str) -> dict[str, t.Any] | None:
        return self.resources.get(resource_id.lower())

    def writes(self) -> list[dict[str, t.Any]]:
        """Requests that could change state (everything but GETs and token requests)."""
        return [
            entry for entry in self.log if entry["method"] != "GET" and not entry["path"].endswith("/oauth2/v2.0/token")
        ]

    def metadata(self) -> list[dict[str, t.Any]]:
        return [
            {
                "name": "ZerotrustFakeCloud",
                "portal": self.base_url,
                "authentication": {
                    "loginEndpoint": self.base_url,
                    "audiences": [self.base_url + "/"],
                    "tenant": "common",
                    "identityProvider": "AAD",
                },
                "media": self.base_url,
                "graphAudience": self.graph_url,
                "graph": self.graph_url,
                "microsoftGraphResourceId": self.graph_url + "/",
                "resourceManager": self.base_url + "/",
                "gallery": self.base_url,
                "batch": self.base_url,
                "sqlManagement": self.base_url,
                "vmImageAliasDoc": self.base_url,
                "activeDirectoryDataLake": self.base_url,
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

    # --- HTTP plumbing -------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler, role: str, vault: str) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        entry: dict[str, t.Any] = {"service": role, "method": request.command, "path": parsed.path, "query": query}
        try:
            with self.lock:
                if role == "main" and parsed.path.endswith("/oauth2/v2.0/token"):
                    answer = self.token(parsed.path, urllib.parse.parse_qs(raw.decode()))
                elif role == "main" and parsed.path.endswith("/.well-known/openid-configuration"):
                    answer = self.openid_configuration(parsed.path)
                elif role == "main" and parsed.path == "/metadata/endpoints":
                    answer = Answer(200, self.metadata())
                else:
                    body = json.loads(raw) if raw else None
                    entry["body"] = body
                    audience = {"main": self.base_url + "/", "graph": self.graph_url + "/"}.get(role, KEYVAULT_AUDIENCE)
                    self.authorize(request.headers.get("Authorization", ""), audience, role)
                    if role == "main":
                        answer = self.arm(request.command, parsed.path, query, body)
                    elif role == "graph":
                        answer = self.graph_api(request.command, parsed.path, query, body)
                    else:
                        answer = self.keyvault(self.vaults[vault], request.command, parsed.path, body)
        except HttpError as exc:
            answer = Answer(exc.status, {"error": {"code": exc.code, "message": exc.message}}, exc.headers)
        except Exception as exc:  # a bug in the fake: report it as a 500 with the reason
            answer = Answer(500, {"error": {"code": "FakeAzureBug", "message": repr(exc)}})
        entry["status"] = answer.status
        self.log.append(entry)
        payload = b"" if answer.body is None else json.dumps(answer.body).encode()
        request.send_response(answer.status)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(payload)

    # --- Entra ID token endpoint ---------------------------------------------------------------

    def openid_configuration(self, path: str) -> Answer:
        tenant = path.strip("/").split("/")[0]
        if tenant.lower() != self.tenant_id:
            raise HttpError(400, "invalid_tenant", f"tenant {tenant} not found")
        base = f"{self.base_url}/{tenant}"
        return Answer(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{self.base_url}/{tenant}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            },
        )

    def token(self, path: str, form: dict[str, list[str]]) -> Answer:
        def one(name: str) -> str:
            return (form.get(name) or [""])[0]

        tenant = path.strip("/").split("/")[0]
        if tenant.lower() != self.tenant_id:
            raise HttpError(400, "invalid_tenant", f"AADSTS90002: tenant {tenant} not found")
        if one("grant_type") != "client_credentials":
            raise HttpError(400, "unsupported_grant_type", "only client_credentials is faked")
        if one("client_id") != self.client_id or not secrets.compare_digest(one("client_secret"), self.client_secret):
            raise HttpError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        scope = one("scope")
        audience = scope[: -len(".default")] if scope.endswith(".default") else scope
        claims = {"aud": audience, "tid": self.tenant_id, "appid": self.client_id, "oid": self.deployer_object_id}
        encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        token = f"eyJhbGciOiJub25lIn0.{encoded}.fake"
        return Answer(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token})

    def authorize(self, header: str, audience: str, role: str) -> None:
        challenge = {
            "WWW-Authenticate": f'Bearer authorization="{self.base_url}/{self.tenant_id}", resource="{audience}"'
        }
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

    # --- ARM -----------------------------------------------------------------------------------

    def arm(self, method: str, path: str, query: dict[str, str], body: t.Any) -> Answer:
        if "api-version" not in query:
            raise HttpError(400, "MissingApiVersionParameter", "The api-version query parameter is required")
        lower = path.lower().rstrip("/")
        sub = f"/subscriptions/{self.subscription_id}"
        if not lower.startswith(sub):
            raise HttpError(404, "SubscriptionNotFound", f"subscription in {path} not found")
        m = re.fullmatch(re.escape(sub) + r"/resourcegroups/([^/]+)", lower)
        if m:
            group = self.resource_groups.get(m.group(1))
            if method == "GET" and group:
                return Answer(200, group)
            raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{m.group(1)}' could not be found.")
        if lower == sub + "/providers/microsoft.authorization/roleassignments" and method == "GET":
            return Answer(200, {"value": [a for k, a in self.resources.items() if "/roleassignments/" in k]})
        m = re.fullmatch(
            re.escape(sub) + r"/providers/microsoft.containerservice/locations/[^/]+/operations/([^/]+)", lower
        )
        if m:
            return self.operation_status(m.group(1))
        if "/providers/microsoft.authorization/roleassignments/" in lower:
            return self.role_assignment(method, path, body)
        m = re.fullmatch(re.escape(sub) + r"/resourcegroups/([^/]+)/providers/([^/]+/[^/]+)/([^/]+)(/.*)?", lower)
        if not m:
            raise HttpError(404, "NotFound", f"no fake for {method} {path}")
        group, provider_type = m.group(1), m.group(2)
        if group not in self.resource_groups:
            raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
        if provider_type == "microsoft.keyvault/vaults" and not m.group(4):
            return self.vault(method, path, body)
        if provider_type == "microsoft.containerservice/managedclusters" and not m.group(4):
            return self.managed_cluster(method, path, body)
        if provider_type == "microsoft.managedidentity/userassignedidentities":
            return self.identity(method, path, body, m.group(4) or "")
        raise HttpError(404, "NotFound", f"no fake for {method} {path}")

    def _get(self, path: str, kind: str) -> Answer:
        found = self.resources.get(path.lower().rstrip("/"))
        if not found:
            raise HttpError(404, "ResourceNotFound", f"The {kind} '{path.rsplit('/', 1)[-1]}' was not found.")
        return Answer(200, copy.deepcopy(found))

    def vault(self, method: str, path: str, body: t.Any) -> Answer:
        if method == "GET":
            return self._get(path, "Microsoft.KeyVault/vaults")
        if method != "PUT":
            raise HttpError(405, "MethodNotAllowed", method)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        props = dict((body or {}).get("properties") or {})
        for required in ("tenantId", "sku"):
            if required not in props:
                raise HttpError(400, "BadRequest", f"properties.{required} is required")
        existing = self.resources.get(path.lower().rstrip("/"))
        if existing is None and name.lower() in self.vaults:
            raise HttpError(409, "VaultAlreadyExists", f"The vault name '{name}' is already in use.")
        if (
            existing
            and existing["properties"].get("enablePurgeProtection")
            and props.get("enablePurgeProtection") is False
        ):
            raise HttpError(400, "BadRequest", "Purge protection cannot be disabled once enabled.")
        if existing is None:
            server = self._serve("keyvault", name.lower())
            self.vaults[name.lower()] = Vault(name, server, f"https://127.0.0.1:{server.server_address[1]}/")
        vault = self.vaults[name.lower()]
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
        self.resources[path.lower().rstrip("/")] = resource
        return Answer(200 if existing else 201, copy.deepcopy(resource))

    def role_assignment(self, method: str, path: str, body: t.Any) -> Answer:
        if method == "GET":
            return self._get(path, "role assignment")
        if method != "PUT":
            raise HttpError(405, "MethodNotAllowed", method)
        props = (body or {}).get("properties") or {}
        scope = path.rstrip("/").split("/providers/Microsoft.Authorization/roleAssignments/", 1)
        if len(scope) != 2:
            scope = re.split(r"/providers/microsoft\.authorization/roleassignments/", path.rstrip("/"), flags=re.I)
        for key, existing in self.resources.items():
            other = existing.get("properties", {})
            if (
                "/roleassignments/" in key
                and key != path.lower().rstrip("/")
                and other.get("scope", "").lower() == scope[0].lower()
                and other.get("principalId") == props.get("principalId")
                and other.get("roleDefinitionId", "").lower() == props.get("roleDefinitionId", "").lower()
            ):
                raise HttpError(409, "RoleAssignmentExists", "The role assignment already exists.")
        resource = {
            "id": path.rstrip("/"),
            "name": scope[1],
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": props.get("roleDefinitionId"),
                "principalId": props.get("principalId"),
                "principalType": props.get("principalType", "ServicePrincipal"),
                "scope": scope[0],
                "createdOn": now_iso(),
            },
        }
        self.resources[path.lower().rstrip("/")] = resource
        return Answer(201, copy.deepcopy(resource))

    def identity(self, method: str, path: str, body: t.Any, child: str) -> Answer:
        kind = "federated identity credential" if child else "user assigned identity"
        if child and not re.fullmatch(r"/federatedidentitycredentials/[^/]+", child.lower()):
            raise HttpError(404, "NotFound", f"no fake for {path}")
        if method == "GET":
            return self._get(path, kind)
        if method != "PUT":
            raise HttpError(405, "MethodNotAllowed", method)
        key = path.lower().rstrip("/")
        existing = self.resources.get(key)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if child:
            props = dict((body or {}).get("properties") or {})
            for required in ("issuer", "subject", "audiences"):
                if not props.get(required):
                    raise HttpError(400, "BadRequest", f"properties.{required} is required")
            resource = {
                "id": path.rstrip("/"),
                "name": name,
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
                "properties": props,
            }
        else:
            identity_props = (existing or {}).get("properties") or {
                "clientId": str(uuid.uuid4()),
                "principalId": str(uuid.uuid4()),
                "tenantId": self.tenant_id,
            }
            resource = {
                "id": path.rstrip("/"),
                "name": name,
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "location": (body or {}).get("location", "westeurope"),
                "tags": (body or {}).get("tags") or {},
                "properties": identity_props,
            }
        self.resources[key] = resource
        return Answer(200 if existing else 201, copy.deepcopy(resource))

    def managed_cluster(self, method: str, path: str, body: t.Any) -> Answer:
        key = path.lower().rstrip("/")
        if method == "GET":
            return self._get(path, "Microsoft.ContainerService/managedClusters")
        if method != "PUT":
            raise HttpError(405, "MethodNotAllowed", "only GET and PUT are faked for managed clusters")
        current = self.resources.get(key)
        if current is None:
            raise HttpError(400, "BadRequest", "creating clusters is not faked")
        if current["properties"]["provisioningState"] not in ("Succeeded", "Failed"):
            raise HttpError(409, "OperationNotAllowed", "Operation is not allowed: another operation is in progress")
        final = copy.deepcopy(body)
        props = final.setdefault("properties", {})
        for name in ("fqdn", "currentKubernetesVersion", "powerState"):
            props[name] = current["properties"].get(name)
        profiles = props.get("addonProfiles") or {}
        old_profiles = current["properties"].get("addonProfiles") or {}
        for addon, profile in profiles.items():
            old_identity = (old_profiles.get(addon) or {}).get("identity")
            if addon.lower() == "azurekeyvaultsecretsprovider" and profile.get("enabled"):
                profile["identity"] = old_identity or {
                    "clientId": str(uuid.uuid4()),
                    "objectId": str(uuid.uuid4()),
                    "resourceId": f"{current['id']}-addon-identity",
                }
        oidc = props.get("oidcIssuerProfile") or {}
        if oidc.get("enabled"):
            oidc["issuerURL"] = f"https://oidc.fake.test/{self.tenant_id}/{uuid.uuid5(uuid.NAMESPACE_URL, key)}/"
        props["provisioningState"] = "Succeeded"
        operation = str(uuid.uuid4())
        self.operations[operation] = ["InProgress", "Succeeded"]
        self.pending[operation] = {"key": key, "final": final}
        current["properties"]["provisioningState"] = "Updating"
        location = current.get("location", "westeurope")
        monitor = (
            f"{self.base_url}/subscriptions/{self.subscription_id}/providers/Microsoft.ContainerService"
            f"/locations/{location}/operations/{operation}?api-version=2017-08-31"
        )
        answer = copy.deepcopy(final)
        answer["properties"]["provisioningState"] = "Updating"
        return Answer(200, answer, {"Azure-AsyncOperation": monitor, "Retry-After": "0"})

    def operation_status(self, operation: str) -> Answer:
        statuses = self.operations.get(operation)
        if statuses is None:
            raise HttpError(404, "NotFound", f"operation {operation} not found")
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if status == "Succeeded" and operation in self.pending:
            done = self.pending.pop(operation)
            self.resources[done["key"]] = done["final"]
        return Answer(200, {"name": operation, "status": status, "startTime": now_iso()}, {"Retry-After": "0"})

    # --- Microsoft Graph -----------------------------------------------------------------------

    @staticmethod
    def _filter(query: dict[str, str], field_name: str) -> str | None:
        expression = query.get("$filter")
        if expression is None:
            return None
        m = re.fullmatch(rf"\s*{field_name}\s+eq\s+'((?:[^']|'')*)'\s*", expression)
        if not m:
            raise HttpError(400, "Request_UnsupportedQuery", f"filter not faked: {expression}")
        return m.group(1).replace("''", "'")

    def graph_api(self, method: str, path: str, query: dict[str, str], body: t.Any) -> Answer:
        parts = path.strip("/").split("/")
        if not parts or parts[0] != "v1.0":
            raise HttpError(404, "BadRequest", f"no fake for {path}")
        parts = parts[1:]
        if parts == ["applications"] and method == "GET":
            name = self._filter(query, "displayName")
            found = [a for a in self.applications.values() if name is None or a["displayName"] == name]
            return Answer(200, {"value": copy.deepcopy(found)})
        if parts == ["applications"] and method == "POST":
            if not (body or {}).get("displayName"):
                raise HttpError(400, "Request_BadRequest", "displayName is required")
            app = {
                "id": str(uuid.uuid4()),
                "appId": str(uuid.uuid4()),
                "displayName": body["displayName"],
                "signInAudience": body.get("signInAudience", "AzureADMyOrg"),
                "groupMembershipClaims": body.get("groupMembershipClaims"),
                "web": {
                    "redirectUris": list((body.get("web") or {}).get("redirectUris") or []),
                    "homePageUrl": None,
                    "logoutUrl": None,
                    "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False},
                    "redirectUriSettings": [],
                },
                "passwordCredentials": [],
            }
            self.applications[app["id"]] = app
            return Answer(201, copy.deepcopy(app))
        if len(parts) >= 2 and parts[0] == "applications":
            app = self.applications.get(parts[1])
            if app is None:
                raise HttpError(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist")
            if len(parts) == 2 and method == "GET":
                return Answer(200, copy.deepcopy(app))
            if len(parts) == 2 and method == "PATCH":
                for name, value in (body or {}).items():
                    if name in ("id", "appId", "passwordCredentials"):
                        raise HttpError(400, "Request_BadRequest", f"{name} cannot be patched")
                    app[name] = value
                return Answer(204)
            if parts[2:] == ["addPassword"] and method == "POST":
                wanted = (body or {}).get("passwordCredential") or {}
                secret_text = secrets.token_urlsafe(30)
                credential = {
                    "customKeyIdentifier": None,
                    "displayName": wanted.get("displayName"),
                    "endDateTime": wanted.get("endDateTime"),
                    "hint": secret_text[:3],
                    "keyId": str(uuid.uuid4()),
                    "startDateTime": now_iso(),
                    "secretText": None,
                }
                app["passwordCredentials"].append(credential)
                return Answer(200, dict(credential, secretText=secret_text))
            if parts[2:] == ["removePassword"] and method == "POST":
                key_id = (body or {}).get("keyId")
                before = len(app["passwordCredentials"])
                app["passwordCredentials"] = [c for c in app["passwordCredentials"] if c["keyId"] != key_id]
                if len(app["passwordCredentials"]) == before:
                    raise HttpError(404, "Request_ResourceNotFound", f"keyId {key_id} not found")
                return Answer(204)
        if parts == ["servicePrincipals"] and method == "GET":
            app_id = self._filter(query, "appId")
            found = [p for p in self.service_principals.values() if app_id is None or p["appId"] == app_id]
            return Answer(200, {"value": copy.deepcopy(found)})
        if parts == ["servicePrincipals"] and method == "POST":
            app_id = (body or {}).get("appId")
            if not any(a["appId"] == app_id for a in self.applications.values()):
                raise HttpError(
                    400,
                    "Request_BadRequest",
                    "The appId of the service principal does not reference a valid application object.",
                )
            if any(p["appId"] == app_id for p in self.service_principals.values()):
                raise HttpError(409, "Request_MultipleObjectsWithSameKeyValue", "service principal exists")
            principal = {"id": str(uuid.uuid4()), "appId": app_id}
            self.service_principals[principal["id"]] = principal
            return Answer(201, copy.deepcopy(principal))
        raise HttpError(404, "BadRequest", f"no fake for {method} {path}")

    # --- Key Vault data plane ------------------------------------------------------------------

    @staticmethod
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

    def keyvault(self, vault: Vault, method: str, path: str, body: t.Any) -> Answer:
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
                return Answer(200, self._bundle(vault, name, versions[-1]))
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
                return Answer(200, self._bundle(vault, name, version))
            if method == "PATCH" and len(parts) == 3 and versions:
                for version in versions:
                    if version["version"] == parts[2]:
                        if "tags" in (body or {}):
                            version["tags"] = body["tags"]
                        if "contentType" in (body or {}):
                            version["contentType"] = body["contentType"]
                        bundle = self._bundle(vault, name, version)
                        bundle.pop("value")
                        return Answer(200, bundle)
                raise HttpError(404, "SecretNotFound", f"version {parts[2]} not found")
            if method == "DELETE" and len(parts) == 2:
                if not versions:
                    raise HttpError(
                        404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault."
                    )
                vault.deleted[name] = vault.secrets.pop(name)
                bundle = self._bundle(vault, name, vault.deleted[name][-1])
                bundle.pop("value")
                return Answer(200, dict(bundle, recoveryId=f"{vault.uri}deletedsecrets/{name}"))
        if len(parts) >= 2 and parts[0] == "deletedsecrets":
            name = parts[1]
            if name not in vault.deleted:
                raise HttpError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
            if method == "GET" and len(parts) == 2:
                bundle = self._bundle(vault, name, vault.deleted[name][-1])
                bundle.pop("value")
                return Answer(200, dict(bundle, recoveryId=f"{vault.uri}deletedsecrets/{name}"))
            if method == "POST" and parts[2:] == ["recover"]:
                vault.secrets[name] = vault.deleted.pop(name)
                vault.recovering.add(name)
                bundle = self._bundle(vault, name, vault.secrets[name][-1])
                bundle.pop("value")
                return Answer(200, bundle)
        raise HttpError(404, "NotFound", f"no fake for {method} {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Azure until it is interrupted or its lifetime ends.")
    parser.add_argument("--workdir", type=Path, required=True, help="where to write the CA and endpoints.json")
    parser.add_argument("--lifetime", type=float, default=1800.0, help="seconds before the fake stops by itself")
    parser.add_argument("--tenant-id", default="11111111-2222-3333-4444-555555555555")
    parser.add_argument("--subscription-id", default="66666666-7777-8888-9999-000000000000")
    parser.add_argument("--client-id", default="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    parser.add_argument("--client-secret", default="fake-deployer-secret")
    parser.add_argument("--resource-group", default="rg-zerotrust")
    parser.add_argument("--cluster", default="aks-zerotrust")
    args = parser.parse_args()
    fake = FakeAzure(
        args.workdir,
        tenant_id=args.tenant_id,
        subscription_id=args.subscription_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        lifetime=args.lifetime,
    ).start()
    fake.add_resource_group(args.resource_group)
    fake.add_cluster(args.resource_group, args.cluster)
    (args.workdir / "endpoints.json").write_text(
        json.dumps({"metadata": fake.base_url, "graph": fake.graph_url, "ca_file": str(fake.ca_file)}, indent=2)
    )
    print(f"fake Azure: metadata {fake.base_url}, Graph {fake.graph_url}, CA {fake.ca_file}", flush=True)
    stopped = threading.Event()
    threading.Thread(target=lambda: (fake._timer.join() if fake._timer else None, stopped.set()), daemon=True).start()
    try:
        stopped.wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
