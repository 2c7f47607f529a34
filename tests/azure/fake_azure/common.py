"""What every service of the fake shares: its error and answer types, the Key Vault DNS suffix."""

from __future__ import annotations

import copy
import datetime as dt
import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    from .server import FakeAzure

KEYVAULT_DNS = "vault.fake.test"
KEYVAULT_AUDIENCE = f"https://{KEYVAULT_DNS}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def get_resource(fake: FakeAzure, path: str, kind: str) -> Answer:
    found = fake.resources.get(path.lower().rstrip("/"))
    if not found:
        raise HttpError(404, "ResourceNotFound", f"The {kind} '{path.rsplit('/', 1)[-1]}' was not found.")
    return Answer(200, copy.deepcopy(found))
