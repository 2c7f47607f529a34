# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for k8s_apply's HTTP client against a local HTTP/1.1 server: one kept-alive
connection, throttling retried, API Status messages, watch streams read line by line."""

from __future__ import annotations

import json
import threading
import typing as t
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import USER_AGENT, ApiError, Client
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_connection import Connection


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections: set[int] = set()
        self.throttle = 0


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    seen = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: t.Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.requests.append((self.command, self.path, dict(self.headers), body))
            seen.connections.add(id(self.connection))
            if self.path.startswith("/throttled") and seen.throttle:
                seen.throttle -= 1
                self._answer(429, {"kind": "Status", "reason": "TooManyRequests"}, {"Retry-After": "0"})
            elif self.path.startswith("/missing"):
                self._answer(404, {"kind": "Status", "reason": "NotFound", "message": 'configmaps "x" not found'})
            elif "watch=true" in self.path:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                events = [{"type": "ADDED", "object": {"n": 1}}, {"type": "MODIFIED", "object": {"n": 2}}]
                for event in events:
                    line = json.dumps(event).encode() + b"\n"
                    # Split one event over two chunks, as a server may.
                    for part in (line[:7], line[7:]):
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self._answer(200, {"path": self.path, "method": self.command})

        do_GET = do_PATCH = do_DELETE = handle_one

        def log_message(self, *_: t.Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()


def test_requests_share_one_connection_and_are_counted(server: tuple[str, Recorder]) -> None:
    url, seen = server
    client = Client(Connection(host=url, token="t0k", headers={"Impersonate-Group": ["a", "b"]}))  # noqa: S106
    client.request("GET", "/api")
    answer = client.request(
        "PATCH",
        "/api/v1/namespaces/n/configmaps/c",
        query={"fieldManager": "m", "force": "true"},
        body={"kind": "ConfigMap"},
        content_type="application/apply-patch+yaml",
    )
    assert answer.body == {"path": "/api/v1/namespaces/n/configmaps/c?fieldManager=m&force=true", "method": "PATCH"}
    assert client.requests == 2 and len(seen.connections) == 1
    _method, _path, headers, body = seen.requests[1]
    assert headers["Content-Type"] == "application/apply-patch+yaml" and json.loads(body) == {"kind": "ConfigMap"}
    assert headers["Authorization"] == "Bearer t0k" and headers["User-Agent"] == USER_AGENT
    assert headers["Impersonate-Group"] == "a,b"
    client.close()


def test_throttled_requests_are_sent_again_and_counted(server: tuple[str, Recorder]) -> None:
    url, seen = server
    seen.throttle = 2
    client = Client(Connection(host=url))
    assert client.request("GET", "/throttled").status == 200
    assert client.requests == 3


def test_api_errors_carry_the_status_reason_and_message(server: tuple[str, Recorder]) -> None:
    url, _seen = server
    with pytest.raises(ApiError) as info:
        Client(Connection(host=url)).request("GET", "/missing")
    assert (info.value.status, info.value.reason, info.value.message) == (404, "NotFound", 'configmaps "x" not found')
    assert str(info.value) == 'HTTP 404 NotFound: configmaps "x" not found'


def test_watch_reads_events_split_over_chunks_then_the_connection_is_reused(server: tuple[str, Recorder]) -> None:
    url, seen = server
    client = Client(Connection(host=url))
    events = list(client.watch("/apis/apps/v1/namespaces/n/deployments", {"resourceVersion": "5"}, 3))
    assert [e["object"]["n"] for e in events] == [1, 2]
    assert "timeoutSeconds=3" in seen.requests[0][1] and "resourceVersion=5" in seen.requests[0][1]
    client.request("GET", "/api")
    assert client.requests == 2 and len(seen.connections) == 1
