"""The fake's state, its HTTPS servers and the dispatch of each request to the service that answers it."""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import os
import ssl
import threading
import time
import typing as t
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from testkit.pki import CertificateAuthority

from . import arm, faults, graph, keyvault, login, managed_clusters
from .behaviour import Behaviour
from .common import KEYVAULT_AUDIENCE, KEYVAULT_DNS, Answer, HttpError, Principal
from .keyvault import Vault


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, localhost and every vault's
    ``{name}.vault.fake.test`` (testkit's PKI)."""
    ca = CertificateAuthority("zerotrust-aks fake Azure CA", valid_for=dt.timedelta(days=2))
    server = ca.issue_server("127.0.0.1", dns=["localhost", f"*.{KEYVAULT_DNS}"], ips=["127.0.0.1"])
    cert_file, key_file = server.write(directory / "server.pem", directory / "server.key")
    return ca.write(directory / "ca.pem"), cert_file, key_file


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
        behaviour: Behaviour | None = None,
    ) -> None:
        self.workdir = workdir
        # How strict and slow the fake is; tests change its fields between runs (behaviour.py).
        self.behaviour = behaviour if behaviour is not None else Behaviour()
        self.tenant_id = tenant_id.lower()
        self.subscription_id = subscription_id.lower()
        self.client_id = client_id
        self.client_secret = client_secret
        self.deployer_object_id = str(uuid.uuid4())
        # The Graph application permissions in the deployer's tokens (``roles`` claim), which Graph
        # checks (graph.authorize); a test narrows them before a run. New tokens only.
        self.deployer_graph_roles: list[str] = ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"]
        self.lifetime = lifetime
        self.lock = threading.RLock()
        self.log: list[dict[str, t.Any]] = []
        self.resource_groups: dict[str, dict[str, t.Any]] = {}
        self.resources: dict[str, dict[str, t.Any]] = {}  # lower-case ARM id -> body
        self.operations: dict[str, list[str]] = {}  # operation id -> remaining statuses
        self.pending: dict[str, dict[str, t.Any]] = {}  # operation id -> resource id and final body
        self.applications: dict[str, dict[str, t.Any]] = {}
        # appId -> lower-case object ids of its owners (the principal that created it).
        self.application_owners: dict[str, set[str]] = {}
        self.service_principals: dict[str, dict[str, t.Any]] = {}
        self.app_role_assignments: dict[str, list[dict[str, t.Any]]] = {}  # resource SP id -> assignments
        self.federated_credentials: dict[str, list[dict[str, t.Any]]] = {}  # application object id -> credentials
        self.directory: dict[str, dict[str, t.Any]] = {}  # lower-case object id -> user or group
        self.password_users: dict[str, login.PasswordUser] = {}  # lower-case UPN -> user (add_password_user)
        self.vaults: dict[str, Vault] = {}
        # Lower-case object id -> type and creation time: what replication knows (principal_visible).
        self.principals: dict[str, Principal] = {}
        # Requests counted for the kill point (all but the token endpoint, discovery and metadata).
        self.calls = 0
        # Injected faults by kind ("throttle", "error 503", "kill"); each is also in its log entry.
        self.injected: collections.Counter[str] = collections.Counter()
        self._faults = faults.FaultInjector()
        # Vault hostnames: lower-case name -> (address, epoch time from which it resolves).
        self.hosts: dict[str, tuple[str, float]] = {}
        self.hosts_file = workdir / "hosts"
        self._write_hosts()
        self.add_principal(self.deployer_object_id, "ServicePrincipal", seeded=True)
        self.servers: list[ThreadingHTTPServer] = []
        self.ca_file, self.cert_file, self.key_file = make_tls(workdir / "tls")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert_file, self.key_file)
        self._timer: threading.Timer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def serve(self, role: str, vault: str = "") -> ThreadingHTTPServer:
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
        self.main = self.serve("main")
        self.graph = self.serve("graph")
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
        return managed_clusters.seed(self, resource_group, name, location)

    def add_group(self, object_id: str, display_name: str) -> None:
        self.directory[object_id.lower()] = {"displayName": display_name, "principalType": "Group"}
        self.add_principal(object_id, "Group", seeded=True)

    def add_user(self, object_id: str, display_name: str) -> None:
        self.directory[object_id.lower()] = {"displayName": display_name, "principalType": "User"}
        self.add_principal(object_id, "User", seeded=True)

    def add_password_user(self, upn: str, password: str, object_id: str, display_name: str = "") -> None:
        """A directory user who can sign in with a password at the token endpoint (login.py)."""
        self.add_user(object_id, display_name or upn)
        self.password_users[upn.lower()] = login.PasswordUser(upn, password, object_id, display_name or upn)

    def add_principal(self, object_id: str, principal_type: str, *, seeded: bool = False) -> Principal:
        """Register a directory object (``User``, ``Group``, ``ServicePrincipal``) as created now
        (or, ``seeded``, long ago: visible at once). Whoever creates a principal calls this: Graph's
        servicePrincipals POST, a user-assigned identity's PUT, the AKS add-on identity."""
        principal = Principal(principal_type, -math.inf if seeded else time.monotonic())
        self.principals.setdefault(object_id.lower(), principal)
        return self.principals[object_id.lower()]

    def principal_visible(self, object_id: str) -> bool:
        """Whether replication has made the principal known: it exists and is older than
        ``behaviour.principal_lag`` seconds. Entra ID documents that a new service principal or
        managed identity can be missing from reads and role assignment for a while
        (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting#symptom---role-assignment-fails-with-principalnotfound
        and https://learn.microsoft.com/graph/best-practices-concept#handling-expected-errors)."""
        principal = self.principals.get(object_id.lower())
        return principal is not None and time.monotonic() - principal.created >= self.behaviour.principal_lag

    def register_vault_host(self, name: str, port: int) -> str:
        """Publish ``{name}.vault.fake.test`` (resolving to 127.0.0.1 only ``behaviour.vault_dns_lag``
        seconds from now) and return the vault's URI, ``https://{name}.vault.fake.test:{port}/``.

        A new vault's hostname does not resolve at once: no Microsoft page documents how long, but
        the Key Vault team confirmed it ("Key Vault instances are not directly addressable after
        initial creation", Azure/azure-sdk-for-python#1172; Azure/azure-cli#3348), and clients wait
        for it (hashicorp/terraform-provider-azurerm#1081 waits for ten successful lookups). The
        client sees a name resolution failure (requests' ``ConnectionError``), not an HTTP answer.
        Calling it again for a known name keeps its first time.
        """
        host = f"{name.lower()}.{KEYVAULT_DNS}"
        with self.lock:
            if host not in self.hosts:
                self.hosts[host] = ("127.0.0.1", time.time() + self.behaviour.vault_dns_lag)
                self._write_hosts()
        return f"https://{host}:{port}/"

    def _write_hosts(self) -> None:
        """The hosts file shim/sitecustomize.py reads: ``name address not-before`` per line."""
        lines = [f"{host} {address} {not_before:.3f}\n" for host, (address, not_before) in sorted(self.hosts.items())]
        temporary = self.hosts_file.with_suffix(".tmp")
        temporary.write_text("".join(lines))
        os.replace(temporary, self.hosts_file)

    def issue_token(
        self,
        audience: str,
        object_id: str | None = None,
        *,
        app_id: str | None = None,
        roles: t.Iterable[str] | None = None,
    ) -> str:
        """An access token as this fake's token endpoint issues, for any principal (tests acting as
        a workload identity, an administrator, ...); the deployer's by default, with its Graph
        permissions unless ``roles`` says otherwise."""
        deployer = object_id is None
        return login.mint(
            self,
            audience,
            object_id or self.deployer_object_id,
            app_id or (self.client_id if deployer else str(uuid.uuid4())),
            list(roles if roles is not None else (self.deployer_graph_roles if deployer else [])),
        )

    def resource(self, resource_id: str) -> dict[str, t.Any] | None:
        return self.resources.get(resource_id.lower())

    def writes(self) -> list[dict[str, t.Any]]:
        """Requests that could change state (everything but GETs and token requests)."""
        return [
            entry for entry in self.log if entry["method"] != "GET" and not entry["path"].endswith("/oauth2/v2.0/token")
        ]

    # --- HTTP plumbing -------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler, role: str, vault: str) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        entry: dict[str, t.Any] = {"service": role, "method": request.command, "path": parsed.path, "query": query}
        login_route = role == "main" and (
            parsed.path.endswith(("/oauth2/v2.0/token", "/.well-known/openid-configuration"))
            or parsed.path == "/metadata/endpoints"
            or parsed.path.startswith("/common/userrealm/")
        )
        if not login_route and raw:
            # What the client sent, even when a fault answers it (the contract test reads every body).
            try:
                entry["body"] = json.loads(raw)
            except ValueError:
                entry["body"] = raw.decode(errors="replace")
        # Faults and the kill point come first, so they never change state.
        with self.lock:
            answer: Answer | None = None
            if not login_route:
                self.calls += 1
                entry["call"] = self.calls
                if self.behaviour.kill_at_call is not None and self.calls == self.behaviour.kill_at_call:
                    entry["fault"] = "kill"
            # /metadata/endpoints is the tests' own cloud discovery (shim/sitecustomize.py), not Azure's.
            if "fault" not in entry and parsed.path != "/metadata/endpoints":
                answer = self._faults.decide(
                    self.behaviour.faults, role, login_route, request.command, self.subscription_id
                )
                if answer is not None:
                    entry["fault"] = "throttle" if answer.status == 429 else f"error {answer.status}"
            if "fault" in entry:
                self.injected[entry["fault"]] += 1
        if entry.get("fault") == "kill":
            entry["killed"] = faults.kill_client(request.connection)
            entry["status"] = None
            self.log.append(entry)
            request.close_connection = True
            return
        if answer is None:
            answer = self._dispatch(request, role, vault, parsed.path, query, raw, entry)
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

    def _dispatch(
        self,
        request: BaseHTTPRequestHandler,
        role: str,
        vault: str,
        path: str,
        query: dict[str, str],
        raw: bytes,
        entry: dict[str, t.Any],
    ) -> Answer:
        try:
            with self.lock:
                if role == "main" and path.endswith("/oauth2/v2.0/token"):
                    return login.token(self, path, urllib.parse.parse_qs(raw.decode()))
                if role == "main" and path.endswith("/.well-known/openid-configuration"):
                    return login.openid_configuration(self, path)
                if role == "main" and path.startswith("/common/userrealm/"):
                    return login.user_realm(self, path)
                if role == "main" and path == "/metadata/endpoints":
                    return Answer(200, login.metadata(self))
                body = json.loads(raw) if raw else None
                entry["body"] = body
                audience = {"main": self.base_url + "/", "graph": self.graph_url + "/"}.get(role, KEYVAULT_AUDIENCE)
                claims = login.authorize(self, request.headers.get("Authorization", ""), audience, role)
                if role == "main":
                    return arm.handle(self, request.command, path, query, body, request.headers)
                if role == "graph":
                    return graph.handle(self, request.command, path, query, body, claims)
                return keyvault.handle(self, self.vaults[vault], request.command, path, query, body, claims)
        except HttpError as exc:
            return Answer(exc.status, {"error": exc.error_body()}, exc.headers)
        except Exception as exc:  # a bug in the fake: report it as a 500 with the reason
            return Answer(500, {"error": {"code": "FakeAzureBug", "message": repr(exc)}})
