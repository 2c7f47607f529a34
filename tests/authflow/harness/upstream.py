"""A stand-in upstream (for colors-web or any backend Service) that echoes what it receives."""

from __future__ import annotations

import json
import threading
import typing as t
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


class EchoUpstream:
    """Stand-in for colors-web (or any backend Service): answers every request with JSON of it.

    Not the real app: colors-web's image cannot run here (no container runtime). What the login
    flow needs from the upstream is observable through this one: whether a request arrived at
    all, and with which headers (``X-Auth-Request-Email`` from oauth2-proxy via nginx). Every
    request is also kept in ``requests`` (the tests check that none reached a backend no Ingress
    routes to).
    """

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (default: a free port of 127.0.0.1; tests/gateway binds pod IPs)."""
        self.name = name
        self.requests: list[RecordedRequest] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                record = RecordedRequest(self.command, self.path, dict(self.headers.items()))
                upstream.requests.append(record)
                body = json.dumps(
                    {"upstream": upstream.name, "method": record.method, "path": record.path, "headers": record.headers}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

            def log_message(self, format: str, *args: t.Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.address = f"{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"upstream-{name}", daemon=True)

    def start(self) -> EchoUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
