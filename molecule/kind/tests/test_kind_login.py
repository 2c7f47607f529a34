"""The login flow through the real ingress-nginx controller of the kind cluster, from the host.

Run by Molecule's verifier for the kind scenario only (molecule.yml, additional_files_or_dirs).
The scripted browser of tests/authflow (``harness.ScriptedBrowser``) goes to https://<host> on
127.0.0.1:443, where kind publishes the controller's hostPort, and to the in-cluster Dex on
http://idp.localtest.me:5556 (its NodePort, published by kind). The users are the scenario's
(host_vars/localhost.yml: kind_idp_users): jane is in the allowed group, mallory is not.
"""

from __future__ import annotations

import base64
import os
import socket
import sys
import typing as t
import urllib.parse
from pathlib import Path

import pytest
import requests
import yaml
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util import connection as urllib3_connection

SCENARIO = Path(__file__).resolve().parents[1]
REPO = SCENARIO.parents[1]
for root in (REPO / "tests", REPO / "testbed" / "lib"):
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

from authflow import harness

HOST_VARS = yaml.safe_load((SCENARIO / "host_vars" / "localhost.yml").read_text())
GROUP_VARS = yaml.safe_load((REPO / "inventories" / "local" / "group_vars" / "all.yml").read_text())
SITE_HOST: str = HOST_VARS.get("zerotrust_aks_host", GROUP_VARS["zerotrust_aks_host"])
IDP = (HOST_VARS["kind_idp_host"], int(HOST_VARS["kind_idp_port"]))
ISSUER = f"http://{IDP[0]}:{IDP[1]}/dex"
USERS = {user["dex"]["username"]: user for user in HOST_VARS["kind_idp_users"]}
ALLOWED = set(HOST_VARS["zerotrust_aks_allowed_groups"])


class _PinnedHTTPConnection(HTTPConnection):
    """Plain HTTP to the IdP's host name, connected to the host's loopback (kind's port)."""

    targets: t.ClassVar[dict[tuple[str, int], tuple[str, int]]] = {}

    def _new_conn(self) -> socket.socket:
        target = self.targets.get((self.host, self.port))
        if target is None:
            raise harness.OffSiteRequest(f"not a host of the kind scenario: {self.host}:{self.port}")
        return urllib3_connection.create_connection(target, self.timeout)


class _PinnedHTTPAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        connection = type("IdpConnection", (_PinnedHTTPConnection,), {"targets": {IDP: ("127.0.0.1", IDP[1])}})
        pool = type("IdpConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": connection})
        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme, "http": pool}


class KindBrowser(harness.ScriptedBrowser):
    """ScriptedBrowser for the real controller (127.0.0.1:443) and the in-cluster IdP."""

    def __init__(self, ca_file: Path) -> None:
        super().__init__(SITE_HOST, 443, ca_file)
        self.session.mount("http://", _PinnedHTTPAdapter())

    def is_on_test_hosts(self, url: str) -> bool:
        parsed = urllib.parse.urlsplit(url)
        return super().is_on_test_hosts(url) or (parsed.scheme == "http" and (parsed.hostname, parsed.port) == IDP)

    def request(self, method: str, url: str, **kwargs: t.Any) -> requests.Response:
        if not self.is_on_test_hosts(url):
            raise harness.OffSiteRequest(f"not a host of the kind scenario: {url}")
        response = self.session.request(method, url, allow_redirects=False, timeout=30, **kwargs)
        self.history.append(harness.Hop(method, url, response.status_code, response.headers.get("Location")))
        return response


@pytest.fixture(scope="module")
def kubeconfig() -> Path:
    path = os.environ.get("K8S_AUTH_KUBECONFIG", "")
    if not path or not Path(path).is_file():
        pytest.fail("K8S_AUTH_KUBECONFIG must name the kind scenario's kubeconfig")
    return Path(path)


@pytest.fixture(scope="module")
def applied(kubeconfig: Path) -> harness.AppliedObjects:
    return harness.objects_from_cluster(kubeconfig)


@pytest.fixture(scope="module")
def ca_file(applied: harness.AppliedObjects, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site's self-signed certificate chain (from the TLS Secrets the Ingresses name)."""
    pems = []
    for secret in applied.tls_secrets.values():
        data = secret.get("data") or {}
        pems += [base64.b64decode(data[key]).decode() for key in ("ca.crt", "tls.crt") if data.get(key)]
    assert pems, "no TLS Secret behind the site's Ingresses"
    path = tmp_path_factory.mktemp("kind-ca") / "ca.pem"
    path.write_text("\n".join(pems))
    return path


@pytest.fixture
def browser(ca_file: Path) -> KindBrowser:
    return KindBrowser(ca_file)


def hops(browser: KindBrowser) -> str:
    return "\n".join(harness.iter_hops(browser.history))


def log_in(browser: KindBrowser, name: str, path: str = "/") -> requests.Response:
    user = USERS[name]
    return browser.navigate(path, credentials=(user["dex"]["email"], user["password"]))


def test_oauth2_proxy_uses_the_in_cluster_issuer(applied: harness.AppliedObjects) -> None:
    args = applied.deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--oidc-issuer-url={ISSUER}" in args


def test_the_issuer_answers_on_the_host_under_its_own_name(browser: KindBrowser) -> None:
    """Discovery from the host: the same URL oauth2-proxy uses in its pod (CoreDNS rewrite)."""
    response = browser.get(f"{ISSUER}/.well-known/openid-configuration")
    assert response.status_code == 200, hops(browser)
    assert response.json()["issuer"] == ISSUER


def test_an_anonymous_request_is_sent_to_sign_in_by_the_controller(browser: KindBrowser) -> None:
    response = browser.get("/")
    assert response.status_code == 302, hops(browser)
    assert response.headers["Location"] == f"https://{SITE_HOST}/oauth2/start?rd=%2F"


def test_sign_in_goes_to_the_in_cluster_idp(browser: KindBrowser) -> None:
    response = browser.get("/oauth2/start?rd=%2F")
    assert response.status_code == 302, hops(browser)
    assert response.headers["Location"].startswith(f"{ISSUER}/auth?"), response.headers["Location"]


def test_a_user_in_the_allowed_group_reaches_the_app(browser: KindBrowser) -> None:
    allowed = [name for name, user in USERS.items() if ALLOWED & set(user["dex"]["groups"])]
    assert allowed, "no IdP user is in zerotrust_aks_allowed_groups"
    response = log_in(browser, allowed[0], "/")
    assert response.status_code == 200, hops(browser)
    assert response.url == f"https://{SITE_HOST}/", hops(browser)
    assert any(urllib.parse.urlsplit(hop.url).hostname == IDP[0] for hop in browser.history), hops(browser)
    assert browser.get("/oauth2/auth").status_code == 202


def test_a_user_outside_the_allowed_groups_is_refused(browser: KindBrowser) -> None:
    refused = [name for name, user in USERS.items() if not ALLOWED & set(user["dex"]["groups"])]
    assert refused, "every IdP user is in zerotrust_aks_allowed_groups: nothing shows deny by default"
    response = log_in(browser, refused[0], "/")
    assert response.status_code == 403, hops(browser)
    assert browser.get("/").status_code == 302


def test_a_wrong_password_is_refused_by_the_idp(browser: KindBrowser) -> None:
    form = browser.navigate("/")
    assert browser.is_login_form(form), hops(browser)
    response = browser.submit_login(form, next(iter(USERS.values()))["dex"]["email"], "wrong")
    # Dex shows its form again (no redirect to the callback), and no session exists.
    assert not response.is_redirect and browser.is_login_form(response), hops(browser)
    assert browser.get("/").status_code == 302
