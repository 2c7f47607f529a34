"""Who gets in: the allowed groups (global and per app) and app roles, through the real programs.

Scenario ``apps`` (``scenarios/apps.yml``): oauth2-proxy allows the group ``zerotrust-users``
(``--allowed-group``); besides the demo app, ``shop`` (own host, allowed group ``shop-admins``)
and ``wiki`` (``/wiki`` on the main host, allowed groups ``wiki-readers,wiki-editors``, opts in to
the access token header). Each app's Ingress asks oauth2-proxy ``/oauth2/auth?allowed_groups=...``.
Scenario ``app_roles`` (``scenarios/app_roles.yml``): the groups claim is ``roles`` (Entra ID app
roles, as on aks) and the allowed group is the app role value ``colors.user``.

The IdP's users carry the ``groups``/``roles`` claims below; every assertion is on what the
browser and the stand-in upstreams see.
"""

from __future__ import annotations

import typing as t
import urllib.parse
from collections.abc import Iterator

import pytest

from . import harness
from .checks import cookie_name, echoed, echoed_headers, hops
from .conftest import StackStarter

MAIN = "colors.render.test"
SHOP_HOST = "shop.render.test"
# (URL a user opens, name of the stand-in upstream that answers there)
APPS = {
    "colors-web": (f"https://{MAIN}/", "colors-web"),
    "shop": (f"https://{SHOP_HOST}/", "shop"),
    "wiki": (f"https://{MAIN}/wiki/page", "wiki"),
}
JANE = harness.IdpUser("jane", "jane-pw", "jane@example.com", groups=("zerotrust-users",))
ALICE = harness.IdpUser("alice", "alice-pw", "alice@example.com", groups=("zerotrust-users", "shop-admins"))
# The second of the wiki's two groups: the comma list reaches oauth2-proxy whole.
BOB = harness.IdpUser("bob", "bob-pw", "bob@example.com", groups=("zerotrust-users", "wiki-editors"))
MALLORY = harness.IdpUser("mallory", "mallory-pw", "mallory@example.com", groups=("contractors", "shop-admins"))
# app_roles scenario: Carol holds the app role, Dave is only in the group.
CAROL = harness.IdpUser("carol", "carol-pw", "carol@example.com", groups=(), roles=("colors.user",))
DAVE = harness.IdpUser("dave", "dave-pw", "dave@example.com", groups=("zerotrust-users",), roles=())

REACHES = {
    "jane": {"colors-web"},
    "alice": {"colors-web", "shop"},
    "bob": {"colors-web", "wiki"},
}


@pytest.fixture(scope="module")
def apps_objects(scenario_objects: t.Callable[[str], harness.AppliedObjects]) -> harness.AppliedObjects:
    return scenario_objects("apps")


@pytest.fixture(scope="module")
def apps_stack(apps_objects: harness.AppliedObjects, start_stack: StackStarter) -> Iterator[harness.LoginStack]:
    with start_stack(apps_objects, users=[JANE, ALICE, BOB, MALLORY]) as running:
        yield running


@pytest.fixture(scope="module")
def roles_stack(
    scenario_objects: t.Callable[[str], harness.AppliedObjects], start_stack: StackStarter
) -> Iterator[harness.LoginStack]:
    with start_stack(scenario_objects("app_roles"), users=[CAROL, DAVE]) as running:
        yield running


def auth_url_of(objects: harness.AppliedObjects, ingress_name: str) -> str:
    (ingress,) = [i for i in objects.ingresses if i["metadata"]["name"] == ingress_name]
    url: str = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
    return url


# ---- the objects say what the contract says ------------------------------------------------


def test_each_app_ingress_asks_oauth2_proxy_with_its_allowed_groups(apps_objects: harness.AppliedObjects) -> None:
    assert urllib.parse.urlsplit(auth_url_of(apps_objects, "colors-web")).query == ""
    shop = urllib.parse.urlsplit(auth_url_of(apps_objects, "shop"))
    assert shop.path == "/oauth2/auth"
    assert urllib.parse.parse_qs(shop.query) == {"allowed_groups": ["shop-admins"]}
    wiki = urllib.parse.parse_qs(urllib.parse.urlsplit(auth_url_of(apps_objects, "wiki")).query)
    assert wiki == {"allowed_groups": ["wiki-readers,wiki-editors"]}
    assert harness.deployed_flag(apps_objects.deployment, "--allowed-group") == ["zerotrust-users"]


def test_the_stack_serves_the_main_host_and_the_shop_host(apps_stack: harness.LoginStack) -> None:
    assert apps_stack.hosts == [MAIN, SHOP_HOST]


# ---- allowed and refused --------------------------------------------------------------------


@pytest.mark.parametrize("user", [JANE, ALICE, BOB], ids=lambda u: u.username)
@pytest.mark.parametrize("app", sorted(APPS))
def test_each_user_reaches_only_the_apps_of_their_groups(
    apps_stack: harness.LoginStack, user: harness.IdpUser, app: str
) -> None:
    browser = apps_stack.browser()
    url, upstream_name = APPS[app]
    upstream = apps_stack.upstreams[harness.service_key(upstream_name, 80, upstream_name)]
    before = len(upstream.requests)
    response = browser.navigate(url, credentials=user.credentials)
    if app in REACHES[user.username]:
        assert echoed(response)["upstream"] == upstream_name, hops(browser)
        assert response.url == url, hops(browser)
    else:
        # Logged in (the global group lets them), but the app's auth subrequest gets 403 from
        # oauth2-proxy, which nginx answers with; the app sees nothing.
        assert response.status_code == 403, hops(browser)
        assert response.url == url, hops(browser)
        assert len(upstream.requests) == before


def test_the_groups_header_reaches_the_app(apps_stack: harness.LoginStack) -> None:
    browser = apps_stack.browser()
    headers = echoed_headers(browser.navigate(APPS["shop"][0], credentials=ALICE.credentials))
    assert headers.get("x-auth-request-groups") == "zerotrust-users,shop-admins", headers
    assert headers.get("x-auth-request-user") == "alice"
    assert headers.get("x-auth-request-email") == "alice@example.com"


def test_the_per_app_decision_is_oauth2_proxys(apps_stack: harness.LoginStack) -> None:
    """/oauth2/auth itself (reached through the /oauth2 Ingress) answers 403 for Bob and the shop."""
    browser = apps_stack.browser()
    browser.navigate(APPS["shop"][0], credentials=BOB.credentials)
    assert browser.get("/oauth2/auth", host=SHOP_HOST).status_code == 202
    assert browser.get("/oauth2/auth?allowed_groups=shop-admins", host=SHOP_HOST).status_code == 403
    assert browser.get("/oauth2/auth?allowed_groups=wiki-readers,wiki-editors", host=SHOP_HOST).status_code == 202


def test_the_auth_subrequest_reaches_oauth2_proxy_with_the_query_as_annotated(
    apps_stack: harness.LoginStack, apps_objects: harness.AppliedObjects
) -> None:
    browser = apps_stack.browser()
    assert echoed(browser.navigate(APPS["wiki"][0], credentials=BOB.credentials))["upstream"] == "wiki"
    annotated = urllib.parse.urlsplit(auth_url_of(apps_objects, "wiki"))
    expected = f"{annotated.path}?{annotated.query}"
    log = (apps_stack.log_dir / "oauth2-proxy.log").read_text()
    assert f'"{expected}"' in log or f" {expected} " in log, f"{expected} not in oauth2-proxy's request log"


def test_a_user_outside_the_allowed_group_gets_403_from_oauth2_proxy(
    apps_stack: harness.LoginStack, apps_objects: harness.AppliedObjects
) -> None:
    """Mallory's IdP login succeeds, but oauth2-proxy's callback refuses her (no --allowed-group
    matches) and saves no session — even for the shop, whose own group she is in."""
    for url in (APPS["colors-web"][0], APPS["shop"][0]):
        browser = apps_stack.browser()
        response = browser.navigate(url, credentials=MALLORY.credentials)
        assert response.status_code == 403, hops(browser)
        assert urllib.parse.urlsplit(response.url).path == "/oauth2/callback", hops(browser)
        host = urllib.parse.urlsplit(url).hostname
        assert browser.cookie(cookie_name(apps_objects), host=host) is None
        assert browser.get("/", host=host).status_code == 302


def test_the_access_token_header_reaches_only_the_app_that_opted_in(apps_stack: harness.LoginStack) -> None:
    browser = apps_stack.browser()
    wiki = echoed_headers(browser.navigate(APPS["wiki"][0], credentials=BOB.credentials))
    assert wiki.get("x-auth-request-access-token", "").count(".") == 2, wiki  # a JWT
    colors = echoed_headers(browser.navigate(APPS["colors-web"][0]))
    assert "x-auth-request-access-token" not in colors
    assert "authorization" not in colors


def test_a_session_on_one_host_is_not_one_on_the_other(
    apps_stack: harness.LoginStack, apps_objects: harness.AppliedObjects
) -> None:
    """The __Host- cookie is host-only: the shop host runs its own login."""
    browser = apps_stack.browser()
    assert echoed(browser.navigate(APPS["colors-web"][0], credentials=ALICE.credentials))["upstream"] == "colors-web"
    assert browser.cookie(cookie_name(apps_objects), host=MAIN)
    assert browser.cookie(cookie_name(apps_objects), host=SHOP_HOST) is None
    response = browser.get(APPS["shop"][0])
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"https://{SHOP_HOST}/oauth2/start?rd="), hops(browser)


# ---- app roles (the aks default: groups claim "roles") ----------------------------------------


def test_a_user_with_the_app_role_gets_in(roles_stack: harness.LoginStack) -> None:
    browser = roles_stack.browser()
    headers = echoed_headers(browser.navigate("/", credentials=CAROL.credentials))
    assert headers.get("x-auth-request-user") == "carol"
    assert headers.get("x-auth-request-groups") == "colors.user", headers


def test_a_user_without_the_app_role_gets_403_whatever_their_groups(roles_stack: harness.LoginStack) -> None:
    browser = roles_stack.browser()
    response = browser.navigate("/", credentials=DAVE.credentials)
    assert response.status_code == 403, hops(browser)
    assert urllib.parse.urlsplit(response.url).path == "/oauth2/callback", hops(browser)
