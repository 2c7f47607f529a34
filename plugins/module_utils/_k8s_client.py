# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): a lean HTTP client for the Kubernetes
API — the standard library's http.client with raw paths over one kept-alive connection, counting
every request it sends.

Not the ``kubernetes`` package's ApiClient: importing it costs ~1 s (every API model). Not
urllib3 either: its import alone (~0.25 s) costs more than AnsibleModule's, for a pool the engine
does not need (one connection, one request at a time)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import tempfile
import time
import typing as t
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_connection import Connection

USER_AGENT = "zerotrust.aks/k8s_apply"
APPLY_PATCH = "application/apply-patch+yaml"
CONNECT_TIMEOUT = 15.0
THROTTLE_ATTEMPTS = 4


class ApiError(Exception):
    """An answer with an unexpected HTTP status, with the API's Status reason and message."""

    def __init__(self, method: str, path: str, status: int, body: bytes, http_reason: str = "") -> None:
        self.method = method
        self.path = path
        self.status = status
        self.reason = http_reason
        self.message = ""
        self.causes: list[str] = []
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("kind") == "Status":
            self.reason = str(parsed.get("reason") or http_reason)
            self.message = str(parsed.get("message") or "")
        else:
            self.message = body.decode("utf-8", "replace").strip()[:300]
        super().__init__(f"HTTP {status} {self.reason}: {self.message}".rstrip(": "))


class ConnectionFailure(Exception):
    """No HTTP answer at all: refused, TLS failure, DNS, timeout."""


@dataclass
class Response:
    status: int
    headers: t.Mapping[str, str]
    body: t.Any


def _bypass_proxy(host: str, no_proxy: str | None) -> bool:
    hostname = urlsplit(host).hostname or ""
    for entry in (no_proxy or "").split(","):
        entry = entry.strip().lstrip(".")
        if entry and (entry == "*" or hostname == entry or hostname.endswith("." + entry)):
            return True
    return False


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def ssl_context(conn: Connection) -> ssl.SSLContext:
    """The TLS settings of CONN; certificate data is written to a private temporary directory
    only for the moment ``load_cert_chain`` (which wants files) reads it."""
    context = ssl.create_default_context(cafile=conn.ca_file, cadata=conn.ca_data)
    if not conn.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert, key = conn.cert_file, conn.key_file
    if conn.cert_data or conn.key_data:
        with tempfile.TemporaryDirectory(prefix="zerotrust-aks-") as tmp:
            if conn.cert_data:
                cert = os.path.join(tmp, "cert.pem")
                with open(cert, "w", encoding="utf-8", opener=lambda p, f: os.open(p, f, 0o600)) as stream:
                    stream.write(conn.cert_data)
            if conn.key_data:
                key = os.path.join(tmp, "key.pem")
                with open(key, "w", encoding="utf-8", opener=lambda p, f: os.open(p, f, 0o600)) as stream:
                    stream.write(conn.key_data)
            if cert:
                context.load_cert_chain(cert, key)
    elif cert:
        context.load_cert_chain(cert, key)
    return context


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection that can check the certificate against another name (tls-server-name)."""

    def __init__(self, *args: t.Any, server_hostname: str | None = None, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_hostname = server_hostname

    def connect(self) -> None:
        if not self.server_hostname:
            super().connect()
            return
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_hostname)  # type: ignore[attr-defined]


class Client:
    """JSON requests to one API server. ``requests`` counts what was sent (watches included)."""

    def __init__(self, conn: Connection, timeout: float = 60.0) -> None:
        self.conn = conn
        self.requests = 0
        self.timeout = timeout
        self.headers: dict[str, str] = {"User-Agent": USER_AGENT}
        if conn.token:
            self.headers["Authorization"] = f"Bearer {conn.token}"
        elif conn.username and conn.password:
            self.headers["Authorization"] = _basic(f"{conn.username}:{conn.password}")
        for name, value in conn.headers.items():
            # One comma-joined header: the API server splits Impersonate-Group values.
            self.headers[name] = ",".join(value) if isinstance(value, list) else value
        target = urlsplit(conn.host)
        self.https = target.scheme == "https"
        self.base_path = target.path.rstrip("/")
        self.target = (target.hostname or "", target.port or (443 if self.https else 80))
        self.proxy = None
        self.proxy_headers: dict[str, str] = {}
        if conn.proxy and not _bypass_proxy(conn.host, conn.no_proxy):
            proxy = urlsplit(conn.proxy if "://" in conn.proxy else f"http://{conn.proxy}")
            self.proxy = (proxy.hostname or "", proxy.port or 3128)
            options = conn.proxy_headers or {}
            if options.get("proxy_basic_auth"):
                self.proxy_headers["Proxy-Authorization"] = _basic(options["proxy_basic_auth"])
            if options.get("basic_auth"):
                self.headers["Authorization"] = _basic(options["basic_auth"])
            if options.get("user_agent"):
                self.proxy_headers["User-Agent"] = options["user_agent"]
        self.context = ssl_context(conn) if self.https else None
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._connection is None:
            host, port = self.proxy or self.target
            connection: http.client.HTTPConnection
            if self.https:
                connection = _HTTPSConnection(
                    host, port, timeout=CONNECT_TIMEOUT, context=self.context, server_hostname=self.conn.server_hostname
                )
                if self.proxy:
                    connection.set_tunnel(*self.target, headers=self.proxy_headers)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT)
            connection.connect()
            self._connection = connection
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        return self._connection

    def url(self, path: str, query: t.Mapping[str, t.Any] | None = None) -> str:
        return f"{self.conn.host}{path}" + (f"?{urlencode(query)}" if query else "")

    def _target(self, path: str, query: t.Mapping[str, t.Any] | None) -> str:
        target = f"{self.base_path}{path}" + (f"?{urlencode(query)}" if query else "")
        if self.proxy and not self.https:  # a plain-HTTP proxy wants the absolute URL
            return f"http://{self.target[0]}:{self.target[1]}{target}"
        return target

    def _send(
        self, method: str, target: str, data: bytes | None, headers: dict[str, str], timeout: float
    ) -> http.client.HTTPResponse:
        """One request; a kept-alive connection the server closed meanwhile is re-opened once."""
        for attempt in (1, 2):
            reused = self._connection is not None
            try:
                connection = self._connect(timeout)
                connection.request(method, target, body=data, headers=headers)
                return connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if not reused or attempt == 2:
                    raise ConnectionFailure(str(e) or type(e).__name__) from e
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise ConnectionFailure(_cause(e)) from e
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        query: t.Mapping[str, t.Any] | None = None,
        body: t.Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        ok: t.Container[int] = (200, 201),
    ) -> Response:
        headers = dict(self.headers, Accept=accept)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            # default=str: a date a YAML template parsed into a datetime goes out as text.
            data = json.dumps(body, separators=(",", ":"), default=str).encode()
        for attempt in range(1, THROTTLE_ATTEMPTS + 1):
            self.requests += 1
            answer = self._send(method, self._target(path, query), data, headers, self.timeout)
            try:
                payload = answer.read()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise ConnectionFailure(_cause(e)) from e
            if answer.will_close:
                self.close()
            # API Priority and Fairness (429) and a busy server (503) say when to come back;
            # the request was not executed, so sending it again is safe.
            if answer.status not in (429, 503) or attempt == THROTTLE_ATTEMPTS:
                break
            time.sleep(_retry_after(answer.getheader("Retry-After")))
        if answer.status not in ok:
            raise ApiError(method, path, answer.status, payload, answer.reason or "")
        parsed = json.loads(payload) if payload else None
        return Response(answer.status, dict(answer.getheaders()), parsed)

    def watch(self, path: str, query: t.Mapping[str, t.Any], seconds: int) -> t.Iterator[dict[str, t.Any]]:
        """Events of a watch that the server ends after SECONDS; ends quietly when the stream breaks."""
        self.requests += 1
        query = dict(query, watch="true", timeoutSeconds=max(1, seconds))
        headers = dict(self.headers, Accept="application/json")
        answer = self._send("GET", self._target(path, query), None, headers, seconds + 15)
        finished = False
        try:
            if answer.status != 200:
                raise ApiError("WATCH", path, answer.status, answer.read(), answer.reason or "")
            while True:
                line = answer.readline()
                if not line:
                    finished = True
                    return
                if line.strip():
                    yield json.loads(line)
        except (OSError, http.client.HTTPException):
            return
        finally:
            if not finished or answer.will_close:
                self.close()  # an unread stream leaves the connection unusable

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.0), 10.0)
    except ValueError:
        return 1.0


def _cause(error: BaseException) -> str:
    """A readable cause: "[Errno 111] Connection refused", "certificate verify failed: ..."."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: {error.verify_message or error}"
    if isinstance(error, socket.timeout):
        return "timed out"
    return str(error) or type(error).__name__
