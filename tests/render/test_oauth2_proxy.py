"""oauth2-proxy as rendered: flags from the stack model, the hardened-flags guard, the
PodDisruptionBudget and spread, opt-in token headers and federated client authentication."""

from __future__ import annotations

import json
import re
import typing as t

import pytest
import yaml

from .conftest import REPO, Render, RenderProfile

NAMESPACE = "oauth2-proxy"
NAME = "oauth2-proxy"
# Who may enter, per profile: the render inventories may or may not name somebody; these tests
# name somebody themselves, so they do not depend on it (aks: an app role value, as the groups
# claim is "roles" there; local: a group of the IdP's groups claim).
ALLOWED = {
    "aks": {"zerotrust_aks_allowed_groups": ["colors.user"]},
    "local": {"zerotrust_aks_allowed_groups": ["colors-users"]},
}
SHOP_HOST = "shop.aks.render.test"
# Everything switched on: federated client authentication (workload identity), a second app on
# its own host asking for both token headers, its own app role, trusted proxies, a session policy
# and email domains.
MAXIMAL_AKS: dict[str, t.Any] = {
    "zerotrust_aks_identity_mode": "workload",
    "zerotrust_aks_client_auth": "federated",
    "zerotrust_aks_app_roles": [
        {"value": "colors.user", "display_name": "Colors user", "description": "Signs in to colors"},
        {"value": "shop.admin", "display_name": "Shop admin", "description": "Signs in to the shop"},
    ],
    "zerotrust_aks_allowed_groups": ["colors.user"],
    "zerotrust_aks_email_domains": ["example.com", ".corp.example.com"],
    "zerotrust_aks_session_lifetime": "4h",
    "zerotrust_aks_session_refresh": "15m",
    "zerotrust_aks_apps": [
        {
            "name": "shop",
            "namespace": "shop",
            "port": 8080,
            "host": SHOP_HOST,
            "allowed_groups": ["shop.admin"],
            "headers": ["user", "email", "groups", "access_token", "authorization"],
        }
    ],
    "oauth2_proxy_trusted_proxy_ips": ["10.244.0.0/16"],
}
TOKEN_FLAGS = ("--pass-access-token", "--set-authorization-header", "--pass-authorization-header")
TOKEN_HEADERS = ("Authorization", "X-Auth-Request-Access-Token")


def render_with(render_profile: RenderProfile, profile: str, values: dict[str, t.Any], check: bool = True) -> Render:
    return render_profile(profile, "-e", json.dumps({**ALLOWED[profile], **values}), check=check)


def deployment(render: Render) -> dict[str, t.Any]:
    return render.get("Deployment", NAMESPACE, NAME)


def container(render: Render) -> dict[str, t.Any]:
    only: dict[str, t.Any]
    (only,) = deployment(render)["spec"]["template"]["spec"]["containers"]
    return only


def args(render: Render) -> dict[str, list[str]]:
    """Flag -> values, in order (a flag given several times has several values)."""
    found: dict[str, list[str]] = {}
    for arg in container(render)["args"]:
        flag, _sep, value = arg.partition("=")
        found.setdefault(flag, []).append(value)
    return found


def env_names(render: Render) -> list[str]:
    return [entry["name"] for entry in container(render).get("env", [])]


def role_flag_lists() -> tuple[list[str], list[str]]:
    """The guard's two lists, read from the role's vars (the one home of both)."""
    variables = yaml.safe_load((REPO / "roles" / "oauth2_proxy" / "vars" / "main.yml").read_text())
    return variables["_oauth2_proxy_role_flags"], variables["_oauth2_proxy_weakening_flags"]


@pytest.fixture(scope="module", params=["local", "aks"])
def default(request: pytest.FixtureRequest, render_profile: RenderProfile) -> Render:
    """Each profile with the role defaults (and somebody allowed in)."""
    return render_with(render_profile, request.param, {})


@pytest.fixture(scope="module")
def maximal(render_profile: RenderProfile) -> Render:
    return render_with(render_profile, "aks", MAXIMAL_AKS)


# --- Flags from the stack model ----------------------------------------------------------------


def test_authorization_and_session_flags_follow_the_model(default: Render) -> None:
    found = args(default)
    allowed = ALLOWED[default.profile]["zerotrust_aks_allowed_groups"]
    assert found["--allowed-group"] == allowed
    assert found["--oidc-groups-claim"] == ["roles" if default.profile == "aks" else "groups"]
    assert found["--email-domain"] == ["*"]
    assert found["--cookie-expire"] == ["8h"]
    assert found["--cookie-refresh"] == ["1h"]
    assert found["--set-xauthrequest"] == ["true"]
    assert found["--cookie-httponly"] == ["true"] and found["--cookie-secure"] == ["true"]
    assert "offline_access" in found["--scope"][0].split(), "refresh tokens need offline_access"
    host = default.inventory_vars["zerotrust_aks_host"]
    assert found["--redirect-url"] == [f"https://{host}/oauth2/callback"], "one host: an absolute redirect URL"


def test_token_headers_are_off_by_default(default: Render) -> None:
    found = args(default)
    for flag in TOKEN_FLAGS:
        assert flag not in found, f"{flag} without an app asking for a token"
    for ingress in default.of_kind("Ingress"):
        annotations = ingress["metadata"].get("annotations", {})
        copied = annotations.get("nginx.ingress.kubernetes.io/auth-response-headers", "").split(",")
        for header in TOKEN_HEADERS:
            assert header not in copied, f"{ingress['metadata']['name']} copies {header}"


def test_entra_gets_a_backend_logout_url_and_oidc_none(default: Render) -> None:
    found = args(default)
    if default.profile == "aks":
        tenant = default.inventory_vars["zerotrust_aks_tenant_id"]
        assert found["--backend-logout-url"] == [
            f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/logout?id_token_hint={{id_token}}"
        ]
        # /oauth2/sign_out?rd=<Entra logout> must be able to send the browser to Entra.
        assert "login.microsoftonline.com" in found["--whitelist-domain"]
        assert "User.Read" not in found["--scope"][0], "the roles claim needs no Graph call"
    else:
        assert "--backend-logout-url" not in found
        assert found["--whitelist-domain"] == [default.inventory_vars["zerotrust_aks_host"]]


def test_secret_client_authentication_reads_the_client_secret(default: Render) -> None:
    assert env_names(default) == ["OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET"]
    assert "--entra-id-federated-token-auth" not in args(default)


def test_maximal_inputs_reach_the_flags(maximal: Render) -> None:
    found = args(maximal)
    assert found["--allowed-group"] == ["colors.user"]
    assert found["--email-domain"] == ["example.com", ".corp.example.com"]
    assert found["--cookie-expire"] == ["4h"] and found["--cookie-refresh"] == ["15m"]
    assert found["--trusted-proxy-ip"] == ["10.244.0.0/16"]
    assert found["--pass-access-token"] == ["true"] and found["--set-authorization-header"] == ["true"]
    host = maximal.inventory_vars["zerotrust_aks_host"]
    assert set(found["--whitelist-domain"]) == {host, SHOP_HOST, "login.microsoftonline.com"}
    # Two hosts: the callback goes to the host the login started on (its own __Host- cookie).
    assert found["--redirect-url"] == ["/oauth2/callback"]


def test_the_oauth2_ingress_serves_every_host(maximal: Render) -> None:
    ingress = maximal.get("Ingress", NAMESPACE, NAME)
    hosts = [maximal.inventory_vars["zerotrust_aks_host"], SHOP_HOST]
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == hosts
    for rule in ingress["spec"]["rules"]:
        assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/oauth2", "Prefix")]
    assert ingress["spec"]["tls"][0]["hosts"] == hosts


def test_federated_client_authentication_has_no_client_secret(maximal: Render) -> None:
    assert args(maximal)["--entra-id-federated-token-auth"] == ["true"]
    assert env_names(maximal) == ["OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_COOKIE_SECRET"]
    spc = maximal.get("SecretProviderClass", NAMESPACE, NAME)
    synced = [item["secretName"] for item in spc["spec"]["secretObjects"]]
    assert synced == ["client-id", "cookie-secret"]
    objects = yaml.safe_load(spc["spec"]["parameters"]["objects"])["array"]
    mounted = [yaml.safe_load(item)["objectAlias"] for item in objects]
    assert mounted == ["client-id", "cookie-secret"]
    assert "client-secret" not in json.dumps(maximal.objects)
    # The Workload Identity webhook projects the token oauth2-proxy presents to Entra.
    labels = deployment(maximal)["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"
    account = maximal.get("ServiceAccount", NAMESPACE, NAME)
    assert (
        account["metadata"]["annotations"]["azure.workload.identity/client-id"]
        == (maximal.inventory_vars["zerotrust_aks_identity_client_id"])
    )


def test_the_groups_claim_on_entra_asks_for_graph_access(render_profile: RenderProfile) -> None:
    group = "0f0e0d0c-0b0a-0908-0706-050403020100"
    render = render_with(
        render_profile, "aks", {"zerotrust_aks_groups_claim": "groups", "zerotrust_aks_allowed_groups": [group]}
    )
    found = args(render)
    assert found["--oidc-groups-claim"] == ["groups"]
    assert found["--allowed-group"] == [group]
    # Group overage: oauth2-proxy reads /me/transitiveMemberOf from Graph with the user's token.
    assert "User.Read" in found["--scope"][0].split()


# --- Availability --------------------------------------------------------------------------------


def test_two_replicas_a_budget_and_a_spread(default: Render) -> None:
    spec = deployment(default)["spec"]
    assert spec["replicas"] == 2
    budget = default.get("PodDisruptionBudget", NAMESPACE, NAME)
    assert budget["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in budget["spec"]
    assert budget["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    (spread,) = spec["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["maxSkew"] == 1
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_one_replica_gets_a_budget_that_never_blocks_a_drain(render_profile: RenderProfile) -> None:
    render = render_with(render_profile, "local", {"oauth2_proxy_replicas": 1})
    budget = render.get("PodDisruptionBudget", NAMESPACE, NAME)["spec"]
    assert "minAvailable" not in budget
    assert budget["maxUnavailable"] == 1


# --- The hardened-flags guard ----------------------------------------------------------------------

REFUSED = [
    "--cookie-secure=false",
    "--skip-auth-regex=^/public",
    "--skip-auth-route",
    "GET=^/health",
    "--email-domain=evil.example",
    "--insecure-oidc-skip-issuer-verification=true",
    "-trusted-ip=0.0.0.0/0",
    "--cookie-expire=720h",
    "--config=/etc/oauth2-proxy.cfg",
]
REFUSED_FLAGS = [
    "--cookie-secure",
    "--skip-auth-regex",
    "--skip-auth-route",
    "--email-domain",
    "--insecure-oidc-skip-issuer-verification",
    "--trusted-ip",
    "--cookie-expire",
    "--config",
]


def test_extra_args_that_weaken_or_override_fail_before_anything_is_rendered(render_profile: RenderProfile) -> None:
    render = render_with(render_profile, "local", {"oauth2_proxy_extra_args": REFUSED}, check=False)
    output = render.result.output
    assert render.result.returncode != 0, output
    assert "Check the oauth2-proxy inputs" in output
    for flag in REFUSED_FLAGS:
        assert re.search(rf"{re.escape(flag)}[,.]", output), f"{flag} not named\n{output}"
    assert "oauth2_proxy_allow_overrides" in output
    assert not render.directory.exists() or not any(render.directory.iterdir()), "files were rendered"


def test_extra_args_listed_in_allow_overrides_are_passed(render_profile: RenderProfile) -> None:
    render = render_with(
        render_profile,
        "local",
        {
            "oauth2_proxy_extra_args": ["--skip-auth-route=GET=^/healthz$", "--cookie-refresh=5m", "--banner=-"],
            "oauth2_proxy_allow_overrides": ["--skip-auth-route", "--cookie-refresh"],
        },
    )
    found = args(render)
    assert found["--skip-auth-route"] == ["GET=^/healthz$"]
    assert found["--cookie-refresh"] == ["1h", "5m"], "the override comes last, so it wins"
    assert found["--banner"] == ["-"], "a harmless flag needs no override"


def test_allow_overrides_takes_flag_names_only(render_profile: RenderProfile) -> None:
    render = render_with(render_profile, "local", {"oauth2_proxy_allow_overrides": ["skip-auth-route"]}, check=False)
    assert render.result.returncode != 0
    assert "oauth2_proxy_allow_overrides must list flag names" in render.result.output


def test_the_guard_knows_every_flag_the_role_emits(default: Render, maximal: Render) -> None:
    role_flags, _weakening = role_flag_lists()
    for render in (default, maximal):
        emitted = set(args(render))
        assert emitted <= set(role_flags), f"not guarded: {sorted(emitted - set(role_flags))}"


def test_the_guard_lists_are_disjoint_and_well_formed() -> None:
    role_flags, weakening = role_flag_lists()
    assert not set(role_flags) & set(weakening)
    for flag in role_flags + weakening:
        assert re.fullmatch(r"--[a-z0-9][a-z0-9-]*\*?", flag), flag


REFUSED_INPUTS = [
    ({"oauth2_proxy_email_domains": ["example.com"]}, "oauth2_proxy_email_domains is no longer an input"),
    (
        {
            "zerotrust_aks_apps": [
                {"name": "shop", "namespace": "shop", "port": 80, "path": "/shop", "headers": ["user", "access_token"]}
            ],
            "oauth2_proxy_pass_access_token": False,
        },
        "oauth2_proxy_pass_access_token is false, but shop asks for the access_token header",
    ),
    ({"oauth2_proxy_backend_logout_url": "logout"}, "oauth2_proxy_backend_logout_url must be an http(s) URL"),
]


@pytest.mark.parametrize(("values", "message"), REFUSED_INPUTS, ids=["email-domains", "token", "logout-url"])
def test_inputs_that_would_silently_do_the_wrong_thing_are_refused(
    render_profile: RenderProfile, values: dict[str, t.Any], message: str
) -> None:
    render = render_with(render_profile, "local", values, check=False)
    assert render.result.returncode != 0
    assert message in " ".join(render.result.output.split()), render.result.output
