"""What every service of the fake shares: its error and answer types, the Key Vault DNS suffix, and
the directory principals every service looks up."""

from __future__ import annotations

import copy
import datetime as dt
import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    from .server import FakeAzure

KEYVAULT_DNS = "vault.fake.test"
KEYVAULT_AUDIENCE = f"https://{KEYVAULT_DNS}"
# Every name under this suffix resolves only through the fake's hosts file (shim/sitecustomize.py).
FAKE_DNS_SUFFIX = "fake.test"
# The environment variable naming that hosts file for the processes the tests start.
HOSTS_ENV = "ZEROTRUST_AKS_FAKE_AZURE_HOSTS"


@dataclass
class Principal:
    """A directory object as replication sees it: its type (``User``, ``Group``,
    ``ServicePrincipal``) and when it was created (``time.monotonic()``; ``-inf`` for objects
    seeded as long existing)."""

    type: str
    created: float


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HttpError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        inner: dict[str, t.Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        # The service's ``innererror`` (Key Vault: ``{"code": "ForbiddenByRbac"}``), if it sends one.
        self.inner = inner

    def error_body(self) -> dict[str, t.Any]:
        body: dict[str, t.Any] = {"code": self.code, "message": self.message}
        if self.inner is not None:
            body["innererror"] = self.inner
        return body


@dataclass
class Answer:
    status: int
    body: t.Any = None
    headers: dict[str, str] = field(default_factory=dict)


def get_resource(fake: FakeAzure, path: str, kind: str) -> Answer:
    found = fake.resources.get(path.lower().rstrip("/"))
    if not found:
        raise HttpError(404, "ResourceNotFound", f"The {kind} '{path.rsplit('/', 1)[-1]}' was not found.")
    return Answer(200, copy.deepcopy(found))
