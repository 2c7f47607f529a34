# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): a lean HTTP client for the Kubernetes
API — urllib3 with raw paths over one kept-alive connection, counting every request it sends.

Not the ``kubernetes`` package's ApiClient: importing it costs ~1 s (every API model), and the
engine needs only JSON over a handful of verbs."""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import typing as t
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_connection import Connection

try:
    import urllib3

    HAS_URLLIB3 = True
except ImportError:  # pragma: no cover - ansible-core's own dependencies pull urllib3 in on most hosts
    HAS_URLLIB3 = False

USER_AGENT = "zerotrust.aks/k8s_apply"
APPLY_PATCH = "application/apply-patch+yaml"


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
            self.headers.update(urllib3.util.make_headers(basic_auth=f"{conn.username}:{conn.password}"))
        for name, value in conn.headers.items():
            # urllib3 sends a list value as one comma-joined header, which the API server splits.
            self.headers[name] = ",".join(value) if isinstance(value, list) else value
        pool_args: dict[str, t.Any] = {
            "maxsize": 2,
            "retries": False,
            "timeout": urllib3.Timeout(connect=15, read=timeout),
        }
        if urlsplit(conn.host).scheme == "https":
            pool_args["ssl_context"] = ssl_context(conn)
            pool_args["cert_reqs"] = "CERT_REQUIRED" if conn.verify else "CERT_NONE"
            if conn.server_hostname:
                pool_args["server_hostname"] = conn.server_hostname
            if not conn.verify:
                pool_args["assert_hostname"] = False
        self.pool: urllib3.PoolManager
        if conn.proxy and not _bypass_proxy(conn.host, conn.no_proxy):
            proxy_headers = urllib3.util.make_headers(**conn.proxy_headers) if conn.proxy_headers else None
            self.pool = urllib3.ProxyManager(conn.proxy, proxy_headers=proxy_headers, **pool_args)
        else:
            self.pool = urllib3.PoolManager(**pool_args)

    def url(self, path: str, query: t.Mapping[str, t.Any] | None = None) -> str:
        return f"{self.conn.host}{path}" + (f"?{urlencode(query)}" if query else "")

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
            data = json.dumps(body, separators=(",", ":")).encode()
        self.requests += 1
        try:
            answer = self.pool.request(method, self.url(path, query), body=data, headers=headers)
        except urllib3.exceptions.HTTPError as e:
            raise ConnectionFailure(_cause(e)) from e
        if answer.status not in ok:
            raise ApiError(method, path, answer.status, answer.data, answer.reason or "")
        parsed = json.loads(answer.data) if answer.data else None
        return Response(answer.status, answer.headers, parsed)

    def watch(self, path: str, query: t.Mapping[str, t.Any], seconds: int) -> t.Iterator[dict[str, t.Any]]:
        """Events of a watch that the server ends after SECONDS; ends quietly when the stream breaks."""
        self.requests += 1
        query = dict(query, watch="true", timeoutSeconds=max(1, seconds))
        try:
            answer = self.pool.request(
                "GET",
                self.url(path, query),
                headers=dict(self.headers, Accept="application/json"),
                preload_content=False,
                timeout=urllib3.Timeout(connect=15, read=seconds + 15),
            )
        except urllib3.exceptions.HTTPError as e:
            raise ConnectionFailure(_cause(e)) from e
        try:
            if answer.status != 200:
                raise ApiError("WATCH", path, answer.status, answer.read(), answer.reason or "")
            pending = b""
            for chunk in answer.stream(65536):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError):
            return
        finally:
            answer.release_conn()

    def close(self) -> None:
        self.pool.clear()


def _cause(error: Exception) -> str:
    """The innermost useful text of a urllib3 failure (refused, certificate verify failed, ...)."""
    reason = getattr(error, "reason", None)
    text = str(reason or error)
    # "HTTPSConnection(host=..., port=...): Failed to establish a new connection: [Errno 111] ..."
    return text.split("): ", 1)[-1] if "): " in text else text
