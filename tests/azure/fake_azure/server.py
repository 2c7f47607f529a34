"""The fake's state, its HTTPS servers and the dispatch of each request to the service that answers it."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import typing as t
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from testkit.pki import CertificateAuthority

from . import arm, graph, keyvault, login, managed_clusters
from .common import KEYVAULT_AUDIENCE, Answer, HttpError
from .keyvault import Vault


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (testkit's PKI)."""
    ca = CertificateAuthority("zerotrust-aks fake Azure CA", valid_for=dt.timedelta(days=2))
    server = ca.issue_server("127.0.0.1", dns=["localhost"], ips=["127.0.0.1"])
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
        self.app_role_assignments: dict[str, list[dict[str, t.Any]]] = {}  # resource SP id -> assignments
        self.federated_credentials: dict[str, list[dict[str, t.Any]]] = {}  # application object id -> credentials
        self.directory: dict[str, dict[str, t.Any]] = {}  # lower-case object id -> user or group
        self.vaults: dict[str, Vault] = {}
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

    def add_user(self, object_id: str, display_name: str) -> None:
        self.directory[object_id.lower()] = {"displayName": display_name, "principalType": "User"}

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
        try:
            with self.lock:
                if role == "main" and parsed.path.endswith("/oauth2/v2.0/token"):
                    answer = login.token(self, parsed.path, urllib.parse.parse_qs(raw.decode()))
                elif role == "main" and parsed.path.endswith("/.well-known/openid-configuration"):
                    answer = login.openid_configuration(self, parsed.path)
                elif role == "main" and parsed.path == "/metadata/endpoints":
                    answer = Answer(200, login.metadata(self))
                else:
                    body = json.loads(raw) if raw else None
                    entry["body"] = body
                    audience = {"main": self.base_url + "/", "graph": self.graph_url + "/"}.get(role, KEYVAULT_AUDIENCE)
                    login.authorize(self, request.headers.get("Authorization", ""), audience, role)
                    if role == "main":
                        answer = arm.handle(self, request.command, parsed.path, query, body)
                    elif role == "graph":
                        answer = graph.handle(self, request.command, parsed.path, query, body)
                    else:
                        answer = keyvault.handle(self.vaults[vault], request.command, parsed.path, body)
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
