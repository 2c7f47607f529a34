"""A minimal Kubernetes API client (standard library only) for `up`'s own requests."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from .certs import ClusterPKI


class Api:
    def __init__(self, server: str, pki: ClusterPKI, client: str = "admin") -> None:
        self.server = server
        self.ctx = ssl.create_default_context(cafile=str(pki.ca))
        self.ctx.load_cert_chain(str(pki.cert(client)), str(pki.key(client)))

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 5, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body or text). BODY is sent as JSON (which is YAML too, so
        CONTENT_TYPE may be application/apply-patch+yaml). Connection errors raise OSError."""
        data = json.dumps(body).encode() if body is not None else None
        # S310: the URL is always https://127.0.0.1:<port>/... built by the testbed.
        req = urllib.request.Request(self.server + path, data=data, method=method)  # noqa: S310
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as resp:  # noqa: S310
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def ok(self, path: str) -> bool:
        return self.request("GET", path)[0] == 200
