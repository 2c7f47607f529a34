"""A scripted stand-in for ``requests.Session`` and a virtual clock, for the Azure modules' unit tests.

Each route is a method and a regular expression on the URL path (no query); its answers are
played in order and the last one repeats. An answer is a status with an optional JSON body and
headers, an exception instance to raise, or a callable that gets the request and returns one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import typing as t
from dataclasses import dataclass, field
from unittest import mock
from urllib.parse import urlsplit


class VirtualClock:
    """``sleep`` advances ``now``; nothing waits for real."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Answer:
    status: int = 200
    body: t.Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    url: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: t.Any


class FakeResponse:
    def __init__(self, answer: Answer) -> None:
        self.status_code = answer.status
        self.headers = dict(answer.headers)
        self.content = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.text = self.content.decode()

    def json(self) -> t.Any:
        return json.loads(self.content)


Scripted: t.TypeAlias = "Answer | BaseException | t.Callable[[Request], Answer | BaseException]"


class FakeSession:
    def __init__(self, clock: VirtualClock | None = None, cost: float = 0.0) -> None:
        self.routes: list[tuple[str, re.Pattern[str], list[Scripted]]] = []
        self.log: list[Request] = []
        self.clock = clock
        self.cost = cost

    def on(self, method: str, path: str, *answers: Scripted) -> None:
        """Script ``method`` on paths matching ``path`` (a regular expression searched in the path)."""
        self.routes.insert(0, (method.upper(), re.compile(path), list(answers)))

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        data: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> FakeResponse:
        path = urlsplit(url).path
        request = Request(
            method.upper(), url, path, dict(params or {}), dict(headers or {}), json.loads(data) if data else None
        )
        self.log.append(request)
        if self.clock is not None:
            self.clock.now += self.cost
        for route_method, pattern, answers in self.routes:
            if route_method == request.method and pattern.search(path):
                scripted = answers.pop(0) if len(answers) > 1 else answers[0]
                answer = (
                    scripted(request) if callable(scripted) and not isinstance(scripted, BaseException) else scripted
                )
                if isinstance(answer, BaseException):
                    raise answer
                return FakeResponse(answer)
        raise AssertionError(f"unexpected request {method} {url}")

    def calls(self, method: str | None = None, path: str = "") -> list[Request]:
        return [r for r in self.log if (method is None or r.method == method.upper()) and re.search(path, r.path)]

    @property
    def writes(self) -> list[Request]:
        return [r for r in self.log if r.method not in ("GET", "HEAD")]


SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
TENANT = "00000000-0000-0000-0000-0000000000bb"
ARM = "https://management.azure.com"


def jwt(claims: dict[str, t.Any]) -> str:
    """An unsigned token with these claims (the modules never check signatures of the caller's own token)."""

    def part(value: dict[str, t.Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@contextlib.contextmanager
def fake_azure(session: FakeSession, clock: VirtualClock, token: str = "t0ken") -> t.Iterator[None]:  # noqa: S107
    """Run an AzureRMModuleBase module with environment credentials, ``session`` as the network and ``clock`` as time.

    Only this collection's REST client talks to ``session``; a module that used an azure SDK client would
    fail on the unexpected network access instead.
    """
    from ansible_collections.zerotrust.aks.plugins.module_utils import _azure_rest
    from azure.core.credentials import AccessToken
    from azure.identity import ClientSecretCredential

    environment = {
        "AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000000cc",
        "AZURE_SECRET": "not-a-secret",
        "AZURE_TENANT": TENANT,
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
    }
    with (
        mock.patch.dict(os.environ, environment),
        mock.patch.object(_azure_rest.requests, "Session", return_value=session),
        mock.patch.object(ClientSecretCredential, "get_token", return_value=AccessToken(token, 4102444800)),
        mock.patch.object(_azure_rest, "sleep", clock.sleep),
        mock.patch.object(_azure_rest, "clock", clock.clock),
    ):
        yield


def warnings(result: dict[str, t.Any]) -> list[str]:
    """Warning texts: ansible-core 2.19 exits with summaries ({"event": {"msg": ...}})."""
    return [item["event"]["msg"] if isinstance(item, dict) else item for item in result.get("warnings", [])]
