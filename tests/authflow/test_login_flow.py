"""The login flow through real programs: what a user's browser sees at the ingress.

nginx is configured from the applied Ingresses (as ingress-nginx would be), oauth2-proxy runs
with the applied Deployment's args and Secrets, the IdP is the testbed's mockoidc build, and the
upstream is a stand-in for colors-web that echoes the headers it receives. A scripted browser
(``harness.ScriptedBrowser``) drives it; every assertion is on status codes, headers and
redirect targets.
"""

from __future__ import annotations

import urllib.parse

import pytest
import requests

from . import harness
from .checks import cookie_name, echoed, hops


def log_in(stack: harness.LoginStack, browser: harness.ScriptedBrowser, path: str = "/") -> requests.Response:
    return browser.navigate(path, credentials=(stack.user.username, stack.user.password))


# ---- the harness runs what was applied -----------------------------------------------------


def test_oauth2_proxy_runs_the_deployed_args_with_only_address_and_issuer_changed(
    stack: harness.LoginStack, applied_objects: harness.AppliedObjects
) -> None:
    container = applied_objects.deployment["spec"]["template"]["spec"]["containers"][0]
    overridden = {o.flag for o in stack.invocation.overrides}
    assert overridden == {"--http-address", "--oidc-issuer-url"}
    kept = [arg for arg in stack.invocation.argv[1:] if arg.split("=", 1)[0] not in overridden]
    assert kept == [arg for arg in container["args"] if arg.split("=", 1)[0] not in overridden]
    assert sorted(stack.invocation.env) == sorted(e["name"] for e in container["env"])


# ---- unauthenticated ----------------------------------------------------------------------


def test_unauthenticated_request_is_redirected_to_oauth2_start(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser
) -> None:
    response = browser.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == f"https://{stack.host}/oauth2/start?rd=%2F"


def test_signin_redirect_carries_the_escaped_request_uri(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser
) -> None:
    # ingress-nginx's $escaped_request_uri: $request_uri escaped with set-misc's set_escape_uri.
    response = browser.get("/some/page?x=1&y=a%20b")
    assert response.status_code == 302
    assert response.headers["Location"] == (
        f"https://{stack.host}/oauth2/start?rd=%2Fsome%2Fpage%3Fx%3D1%26y%3Da%2520b"
    )


def test_oauth2_start_sends_the_browser_to_the_idp_authorize_endpoint(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    response = browser.get("/oauth2/start?rd=%2F")
    assert response.status_code == 302
    location = urllib.parse.urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{stack.issuer_url}/authorize"
    query = urllib.parse.parse_qs(location.query)
    assert query["client_id"] == [stack.invocation.env["OAUTH2_PROXY_CLIENT_ID"]]
    assert query["redirect_uri"] == [f"https://{stack.host}/oauth2/callback"]
    assert query["response_type"] == ["code"]
    assert set(query["scope"][0].split()) >= {"openid", "email"}
    assert query["state"][0]


def test_oauth2_auth_without_cookie_is_401(browser: harness.ScriptedBrowser) -> None:
    response = browser.get("/oauth2/auth")
    assert response.status_code == 401


def test_the_idp_refuses_a_wrong_password(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    form = browser.navigate("/")
    assert browser.is_login_form(form), hops(browser)
    response = browser.submit_login(form, stack.user.username, "wrong")
    assert response.status_code == 401
    assert browser.cookie(cookie_name(applied_objects)) is None


# ---- logging in ---------------------------------------------------------------------------


def test_after_login_the_upstream_answers_with_the_users_email(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser
) -> None:
    response = log_in(stack, browser, "/colors?x=1")
    answer = echoed(response)
    assert answer["upstream"] == "colors-web", hops(browser)
    # The browser is back where it started (rd round trip), on the site's host.
    assert response.url == f"https://{stack.host}/colors?x=1", hops(browser)
    assert answer["path"] == "/colors?x=1"
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    assert headers.get("x-auth-request-email") == stack.user.email, answer["headers"]
    assert headers.get("x-auth-request-user") == stack.user.username, answer["headers"]
    assert headers.get("x-auth-request-groups") == ",".join(stack.user.groups), answer["headers"]
    assert headers.get("x-forwarded-proto") == "https"
    assert headers.get("host") == stack.host


def test_every_auth_response_header_the_ingress_asks_for_reaches_the_upstream(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    """auth-response-headers lists what the app gets; a header oauth2-proxy never sets arrives empty."""
    asked = [
        h.strip()
        for ing in applied_objects.ingresses
        for h in (ing["metadata"].get("annotations") or {})
        .get("nginx.ingress.kubernetes.io/auth-response-headers", "")
        .split(",")
        if h.strip()
    ]
    assert asked
    received = {k.lower() for k in echoed(log_in(stack, browser))["headers"]}
    missing = [h for h in asked if h.lower() not in received]
    assert not missing, f"oauth2-proxy's /oauth2/auth does not set {missing}; the upstream never gets them"


TOKEN_HEADERS = ("authorization", "x-auth-request-access-token")


def test_no_token_reaches_the_app_by_default(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    """Apps get who the user is, not a token they could replay elsewhere (opt-in per app)."""
    asked = {
        h.strip().lower()
        for ing in applied_objects.ingresses
        for h in (ing["metadata"].get("annotations") or {})
        .get("nginx.ingress.kubernetes.io/auth-response-headers", "")
        .split(",")
    }
    assert not asked & set(TOKEN_HEADERS)
    headers = {k.lower(): v for k, v in echoed(log_in(stack, browser))["headers"].items()}
    assert not [h for h in TOKEN_HEADERS if headers.get(h)], headers
    auth = browser.get("/oauth2/auth")
    assert auth.status_code == 202
    assert not [h for h in TOKEN_HEADERS if auth.headers.get(h)], dict(auth.headers)


def test_the_session_cookie_is_host_only_secure_and_http_only(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    log_in(stack, browser)
    name = cookie_name(applied_objects)
    cookies = [c for c in browser.session.cookies if c.name == name]
    assert len(cookies) == 1, [c.name for c in browser.session.cookies]
    cookie = cookies[0]
    assert cookie.secure
    assert cookie.path == "/"
    assert not cookie.domain_specified  # __Host- cookies carry no Domain attribute
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert (cookie.get_nonstandard_attr("SameSite") or "").lower() == "lax"


def test_oauth2_auth_with_the_session_cookie_is_202(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser
) -> None:
    log_in(stack, browser)
    response = browser.get("/oauth2/auth")
    assert response.status_code == 202
    assert response.headers.get("X-Auth-Request-Email") == stack.user.email


# ---- signing out ---------------------------------------------------------------------------


def test_sign_out_ends_the_session(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    assert echoed(log_in(stack, browser))["upstream"] == "colors-web"
    name = cookie_name(applied_objects)
    assert browser.cookie(name)

    response = browser.get("/oauth2/sign_out")
    assert response.status_code == 302, response.text[:300]
    target = urllib.parse.urlsplit(urllib.parse.urljoin(response.url, response.headers["Location"]))
    assert target.hostname in {stack.host, None} or target.scheme == "https", response.headers["Location"]
    assert browser.cookie(name) is None, "sign-out left the session cookie in the browser"
    assert browser.get("/oauth2/auth").status_code == 401
    again = browser.get("/")
    assert again.status_code == 302
    assert again.headers["Location"].startswith(f"https://{stack.host}/oauth2/start?rd="), hops(browser)


# ---- tampering and open redirects -----------------------------------------------------------


def _tamper(value: str, part: int) -> str:
    """Flip one character in the given part of oauth2-proxy's ``payload|timestamp|signature``."""
    parts = value.split("|")
    assert len(parts) == 3, f"unexpected session cookie format: {value[:40]}..."
    target = parts[part]
    middle = len(target) // 2
    flipped = "A" if target[middle] != "A" else "B"
    parts[part] = target[:middle] + flipped + target[middle + 1 :]
    return "|".join(parts)


@pytest.mark.parametrize("part", [0, 1, 2], ids=["payload", "timestamp", "signature"])
def test_a_tampered_session_cookie_is_refused(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects, part: int
) -> None:
    assert echoed(log_in(stack, browser))["upstream"] == "colors-web"
    name = cookie_name(applied_objects)
    value = browser.cookie(name)
    assert value, f"no {name} cookie after login"
    browser.set_cookie(name, _tamper(value, part))

    assert browser.get("/oauth2/auth").status_code == 401
    response = browser.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"https://{stack.host}/oauth2/start?rd=")


@pytest.mark.parametrize(
    "rd",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "https://{host}.evil.example/",
        "https://evil.example/{host}",
        "https://evil.example\\@{host}/",
    ],
)
def test_login_never_sends_the_browser_off_site(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, rd: str
) -> None:
    rd = rd.format(host=stack.host)
    response = log_in(stack, browser, "/oauth2/start?" + urllib.parse.urlencode({"rd": rd}))
    final = urllib.parse.urlsplit(response.url)
    assert (final.scheme, final.hostname) == ("https", stack.host), hops(browser)
    assert response.status_code == 200, hops(browser)
    assert echoed(response)["upstream"] == "colors-web"
    for hop in browser.history:
        if hop.location:
            target = urllib.parse.urlsplit(urllib.parse.urljoin(hop.url, hop.location))
            assert target.hostname in {stack.host, "127.0.0.1"}, hops(browser)


# ---- the API stays internal -----------------------------------------------------------------


def test_no_ingress_routes_to_the_api(applied_objects: harness.AppliedObjects, colors_api_service: str) -> None:
    backends = {
        harness.backend_key(ing, p["backend"])
        for ing in applied_objects.ingresses
        for rule in ing["spec"].get("rules") or []
        for p in rule["http"]["paths"]
    }
    assert colors_api_service not in backends


@pytest.mark.parametrize("api_host", ["colors-api.colors-api.svc.cluster.local", "colors-api", "api.{host}"])
def test_a_request_for_the_api_host_gets_404(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, colors_api_service: str, api_host: str
) -> None:
    api = stack.upstreams[colors_api_service]
    before = len(api.requests)
    response = browser.get("/colors/random", headers={"Host": api_host.format(host=stack.host)})
    assert response.status_code == 404
    assert len(api.requests) == before


def test_api_paths_on_the_site_need_login_and_never_reach_the_api(
    stack: harness.LoginStack, browser: harness.ScriptedBrowser, colors_api_service: str
) -> None:
    api = stack.upstreams[colors_api_service]
    before = len(api.requests)
    response = browser.get("/colors/random")
    assert response.status_code == 302
    assert response.headers["Location"] == f"https://{stack.host}/oauth2/start?rd=%2Fcolors%2Frandom"
    response = log_in(stack, browser, "/colors/random")
    assert echoed(response)["upstream"] == "colors-web", hops(browser)
    assert len(api.requests) == before
