"""The scripted browser: what a user's browser does at the ingress, driven by the tests."""

from __future__ import annotations

import html.parser
import http.cookiejar
import socket
import typing as t
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.util import connection as urllib3_connection


class _PinnedHTTPSConnection(HTTPSConnection):
    """An HTTPS connection whose TCP target comes from a fixed map (``curl --connect-to``).

    TLS (SNI, certificate name check) and the Host header keep the URL's host name, so nginx
    sees exactly what a browser resolving the name to this machine would send.
    """

    targets: t.ClassVar[Mapping[tuple[str, int], tuple[str, int]]] = {}

    def _new_conn(self) -> socket.socket:
        target = self.targets.get((self.host, self.port))
        if target is None:
            raise OffSiteRequest(f"the scripted browser only reaches the test's hosts, not {self.host}:{self.port}")
        return urllib3_connection.create_connection(
            target, self.timeout, source_address=self.source_address, socket_options=self.socket_options
        )


class OffSiteRequest(urllib3.exceptions.HTTPError):
    """The scripted browser was asked to leave the test's hosts."""


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, targets: Mapping[tuple[str, int], tuple[str, int]]) -> None:
        connection_cls = type("PinnedHTTPSConnection", (_PinnedHTTPSConnection,), {"targets": dict(targets)})
        self._pool_cls = type("PinnedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": connection_cls})
        super().__init__()

    def init_poolmanager(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme, "https": self._pool_cls}


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action, self.method = a.get("action", ""), a.get("method", "get").lower()
        elif tag == "input" and "name" in a:
            self.fields[a["name"]] = a.get("value", "")


@dataclass
class Hop:
    method: str
    url: str
    status: int
    location: str | None


class ScriptedBrowser:
    """A scripted browser: a ``requests.Session`` that follows redirects by hand, keeps cookies,
    and fills in the IdP's login form.

    HTTPS requests for the site's hosts on port 443 go to the edge's ``edge_address:edge_port``
    (nginx's local port in tests/authflow, the Gateway's address in tests/gateway: like a DNS
    entry pointing the names at the edge; paths are relative to the first host); HTTP requests go
    only to 127.0.0.1 (the IdP); anything else raises :class:`OffSiteRequest` — redirects off the
    test's hosts are reported, never followed. Unlike a real browser it ignores SameSite; the flow
    here is top-level navigation, where Lax cookies are sent anyway (``harness.Chromium`` is the
    real browser).
    """

    def __init__(
        self, site_hosts: str | Sequence[str], edge_port: int, ca_file: Path, *, edge_address: str = "127.0.0.1"
    ) -> None:
        self.hosts = [site_hosts] if isinstance(site_hosts, str) else list(site_hosts)
        self.site_host = self.hosts[0]
        self.session = requests.Session()
        # Hermetic: no proxy and no CA bundle from the environment (REQUESTS_CA_BUNDLE would
        # replace session.verify), no ~/.netrc.
        self.session.trust_env = False
        self.session.verify = str(ca_file)
        self.session.mount("https://", _PinnedAdapter({(host, 443): (edge_address, edge_port) for host in self.hosts}))
        self.history: list[Hop] = []

    def site_url(self, path: str, host: str | None = None) -> str:
        return f"https://{host or self.site_host}{path}"

    def request(self, method: str, url: str, **kwargs: t.Any) -> requests.Response:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "http" and parsed.hostname != "127.0.0.1":
            raise OffSiteRequest(f"the scripted browser only reaches the test's hosts, not {url}")
        response = self.session.request(method, url, allow_redirects=False, timeout=15, **kwargs)
        self.history.append(Hop(method, url, response.status_code, response.headers.get("Location")))
        return response

    def get(self, url_or_path: str, *, host: str | None = None, **kwargs: t.Any) -> requests.Response:
        url = self.site_url(url_or_path, host) if url_or_path.startswith("/") else url_or_path
        return self.request("GET", url, **kwargs)

    def is_on_test_hosts(self, url: str) -> bool:
        parsed = urllib.parse.urlsplit(url)
        return (parsed.scheme == "https" and parsed.hostname in self.hosts and parsed.port is None) or (
            parsed.scheme == "http" and parsed.hostname == "127.0.0.1"
        )

    def navigate(
        self,
        url_or_path: str,
        *,
        credentials: tuple[str, str] | None = None,
        host: str | None = None,
        max_hops: int = 12,
    ) -> requests.Response:
        """GET and follow redirects (and the IdP's login form with ``credentials``) to the end.

        Stops at the first response that is neither a redirect nor a login form, at a login form
        that refused the credentials (401), or at a redirect that leaves the test's hosts
        (returned unfollowed: check its Location).
        """
        response = self.get(url_or_path, host=host)
        for _hop in range(max_hops):
            if response.is_redirect:
                target = urllib.parse.urljoin(response.url, response.headers["Location"])
                if not self.is_on_test_hosts(target):
                    return response
                response = self.request("GET", target)
            elif credentials and self.is_login_form(response) and response.status_code != 401:
                # (401: the IdP refused the credentials and shows the form again; stop there.)
                response = self.submit_login(response, *credentials)
            else:
                return response
        raise AssertionError(f"more than {max_hops} hops: {self.history[-max_hops:]}")

    @staticmethod
    def is_login_form(response: requests.Response) -> bool:
        return response.headers.get("Content-Type", "").startswith("text/html") and 'name="password"' in response.text

    def submit_login(self, form_page: requests.Response, login: str, password: str) -> requests.Response:
        parser = _FormParser()
        parser.feed(form_page.text)
        if parser.action is None:
            raise AssertionError(f"no form on {form_page.url}")
        fields = {**parser.fields, "login": login, "password": password}
        return self.request(parser.method.upper(), urllib.parse.urljoin(form_page.url, parser.action), data=fields)

    def cookies(self) -> list[http.cookiejar.Cookie]:
        return list(t.cast("Iterable[http.cookiejar.Cookie]", self.session.cookies))

    def cookie(self, name: str, host: str | None = None) -> str | None:
        """The value of cookie ``name`` the browser holds for ``host`` (default: the site host)."""
        for cookie in self.cookies():
            if cookie.name == name and cookie.domain == (host or self.site_host):
                return cookie.value
        return None

    def set_cookie(self, name: str, value: str, host: str | None = None) -> None:
        """Replace cookie ``name`` of ``host`` (default: the site host), e.g. with a tampered or old value."""
        host = host or self.site_host
        for cookie in self.cookies():
            if cookie.name == name and cookie.domain == host:
                self.session.cookies.clear(cookie.domain, cookie.path, cookie.name)
        self.session.cookies.set(name, value, domain=host, path="/", secure=True)


def iter_hops(hops: Iterable[Hop]) -> Iterator[str]:
    """Hops as readable lines, for assertion messages."""
    for hop in hops:
        yield f"{hop.method} {hop.url} -> {hop.status}" + (f" Location: {hop.location}" if hop.location else "")
