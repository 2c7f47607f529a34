"""Unit tests of the harness's pure parts: the nginx config generator and the oauth2-proxy command.

No programs run here, except ``nginx -t`` on a generated configuration when nginx is installed.
The objects are a trimmed copy of what the cluster layer renders for the local profile.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest

from . import harness

HOST = "colors.example.test"
AUTH_URL = "http://oauth2-proxy.oauth2-proxy.svc.cluster.local:4180/oauth2/auth"
SIGNIN = "https://$host/oauth2/start?rd=$escaped_request_uri"
OAUTH2_PROXY = harness.service_key("oauth2-proxy", 4180, "oauth2-proxy")
COLORS_WEB = harness.service_key("colors-web", 80, "colors-web")
ADDRESSES = {OAUTH2_PROXY: "127.0.0.1:14180", COLORS_WEB: "127.0.0.1:18080"}


def web_ingress(**annotations: str) -> dict[str, t.Any]:
    base = {
        "nginx.ingress.kubernetes.io/auth-url": AUTH_URL,
        "nginx.ingress.kubernetes.io/auth-signin": SIGNIN,
        "nginx.ingress.kubernetes.io/auth-response-headers": "Authorization,X-Auth-Request-Email",
        "nginx.ingress.kubernetes.io/proxy-buffer-size": "16k",
        "nginx.ingress.kubernetes.io/affinity": "cookie",
    }
    base.update(annotations)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "colors-web", "namespace": "colors-web", "annotations": base},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [HOST], "secretName": "site-tls"}],
            "rules": [
                {
                    "host": HOST,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "colors-web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


def oauth2_ingress() -> dict[str, t.Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "oauth2-proxy",
            "namespace": "oauth2-proxy",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-buffer-size": "16k"},
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [HOST], "secretName": "site-tls"}],
            "rules": [
                {
                    "host": HOST,
                    "http": {
                        "paths": [
                            {
                                "path": "/oauth2",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "oauth2-proxy", "port": {"number": 4180}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


CERTS = {
    "colors-web/site-tls": (Path("/tls/site.crt"), Path("/tls/site.key")),
    "oauth2-proxy/site-tls": (Path("/tls/site.crt"), Path("/tls/site.key")),
}


def deployment() -> dict[str, t.Any]:
    env = [
        {"name": "OAUTH2_PROXY_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "client-id", "key": "client-id"}}},
        {"name": "OAUTH2_PROXY_COOKIE_SECRET", "valueFrom": {"secretKeyRef": {"name": "cookie", "key": "value"}}},
        {"name": "OAUTH2_PROXY_SILENCE", "value": "x"},
    ]
    args = [
        "--provider=oidc",
        "--oidc-issuer-url=https://login.example.test/v2.0",
        "--http-address=0.0.0.0:4180",
        "--reverse-proxy=true",
        "--email-domain=*",
    ]
    return {
        "kind": "Deployment",
        "metadata": {"name": "oauth2-proxy", "namespace": "oauth2-proxy"},
        "spec": {"template": {"spec": {"containers": [{"name": "oauth2-proxy", "args": args, "env": env}]}}},
    }


SECRETS = {
    "client-id": harness.make_secret("oauth2-proxy", "client-id", {"client-id": "the-client"}),
    "cookie": harness.make_secret("oauth2-proxy", "cookie", {"value": "c" * 32}),
}


# ---- what ingress-nginx's template.go computes ------------------------------------------------


def test_auth_location_name_is_ingress_nginx_s() -> None:
    assert harness.auth_location_name("/", "Prefix") == "/_external-auth-Lw-Prefix"
    assert harness.auth_location_name("/oauth2", "Exact") == "/_external-auth-L29hdXRoMg-Exact"


def test_signin_location_name_is_sha1_of_path_and_url() -> None:
    expected = "@" + hashlib.sha1(b"/" + SIGNIN.encode(), usedforsecurity=False).hexdigest()
    assert harness.signin_location_name("/", SIGNIN) == expected


@pytest.mark.parametrize(
    ("signin", "expected"),
    [
        (SIGNIN, SIGNIN),
        (
            "https://$host/oauth2/start",
            "https://$host/oauth2/start?rd=$pass_access_scheme://$http_host$escaped_request_uri",
        ),
        (
            "https://$host/oauth2/start?x=1",
            "https://$host/oauth2/start?x=1&rd=$pass_access_scheme://$http_host$escaped_request_uri",
        ),
    ],
)
def test_signin_redirect_keeps_an_explicit_rd_and_adds_one_otherwise(signin: str, expected: str) -> None:
    assert harness.auth_signin_redirect(signin) == expected


def test_auth_response_headers_become_auth_request_set_and_proxy_set_header() -> None:
    assert harness.auth_response_header_lines(["X-Auth-Request-Email", "Authorization"]) == [
        "auth_request_set $authHeader0 $upstream_http_x_auth_request_email;",
        "proxy_set_header 'X-Auth-Request-Email' $authHeader0;",
        "auth_request_set $authHeader1 $upstream_http_authorization;",
        "proxy_set_header 'Authorization' $authHeader1;",
    ]


@pytest.mark.parametrize(
    "host",
    ["oauth2-proxy.oauth2-proxy", "oauth2-proxy.oauth2-proxy.svc", "oauth2-proxy.oauth2-proxy.svc.cluster.local"],
)
def test_service_key_accepts_every_dns_form_of_a_service(host: str) -> None:
    assert harness.service_key(host, 4180) == "oauth2-proxy.oauth2-proxy.svc.cluster.local:4180"


@pytest.mark.parametrize("host", ["login.evil.example", "oauth2-proxy.oauth2-proxy.svc.other.domain", "a.b.c.d.e.f"])
def test_service_key_refuses_hosts_that_are_not_services(host: str) -> None:
    with pytest.raises(harness.UnsupportedObject):
        harness.service_key(host, 80)


# ---- Ingress -> locations -------------------------------------------------------------------


def test_prefix_path_without_slash_becomes_prefix_and_exact_location() -> None:
    locations = harness.ingress_locations(oauth2_ingress(), ADDRESSES)[HOST]
    assert [(loc.nginx_path, loc.upstream) for loc in locations] == [
        ("/oauth2/", "127.0.0.1:14180"),
        ("= /oauth2", "127.0.0.1:14180"),
    ]
    assert all(loc.auth_url is None and loc.signin_url is None for loc in locations)


def test_auth_url_changes_only_the_address() -> None:
    (location,) = harness.ingress_locations(web_ingress(), ADDRESSES)[HOST]
    assert location.auth_url == "http://127.0.0.1:14180/oauth2/auth"
    assert location.auth_host == "oauth2-proxy.oauth2-proxy.svc.cluster.local"
    assert location.signin_url == SIGNIN
    assert location.response_headers == ("Authorization", "X-Auth-Request-Email")
    assert location.proxy_buffer_size == "16k"


def test_auth_url_query_string_reaches_the_auth_subrequest_as_annotated(tmp_path: Path) -> None:
    """ingress-nginx writes ``set $target <auth-url>; proxy_pass $target;``: the query (the per-app
    allowed_groups) goes to oauth2-proxy exactly as annotated."""
    query = "allowed_groups=shop-admins,wiki%20readers"
    ingress = web_ingress(**{"nginx.ingress.kubernetes.io/auth-url": f"{AUTH_URL}?{query}"})
    (location,) = harness.ingress_locations(ingress, ADDRESSES)[HOST]
    assert location.auth_url == f"http://127.0.0.1:14180/oauth2/auth?{query}"
    servers = harness.servers_from_ingresses([ingress, oauth2_ingress()], ADDRESSES, CERTS)
    config = harness.nginx_config(
        servers,
        listen="127.0.0.1:18443",
        state_dir=tmp_path,
        default_certificate=(Path("/tls/default.crt"), Path("/tls/default.key")),
    )
    auth = _block(config, "location = /_external-auth-Lw-Prefix {")
    assert f"set $target http://127.0.0.1:14180/oauth2/auth?{query};" in auth
    assert "proxy_pass $target;" in auth


def test_hosts_put_the_oauth2_proxy_ingress_first() -> None:
    other = "shop.example.test"
    oauth2 = oauth2_ingress()
    oauth2["spec"]["rules"].append({**oauth2["spec"]["rules"][0], "host": other})
    shop = copy.deepcopy(web_ingress())
    shop["spec"]["rules"][0]["host"] = other
    objects = harness.AppliedObjects(deployment(), SECRETS, [shop, web_ingress(), oauth2])
    assert objects.hosts == [HOST, other]
    assert objects.host == HOST
    without_oauth2 = harness.AppliedObjects(deployment(), SECRETS, [shop, web_ingress()])
    with pytest.raises(harness.UnsupportedObject, match="several hosts"):
        str(without_oauth2.host)  # reading the property is what raises


def test_idp_users_file_holds_groups_and_roles_and_refuses_twins(tmp_path: Path) -> None:
    carol = harness.IdpUser("carol", "pw", "carol@example.test", groups=(), roles=("colors.user",))
    path = harness.write_users_file(tmp_path / "users.json", [harness.IdpUser(), carol])
    users = json.loads(path.read_text())
    assert users[1] == {
        "username": "carol", "password": "pw", "email": "carol@example.test", "groups": [], "roles": ["colors.user"],
    }  # fmt: skip
    assert users[0]["groups"] == ["zerotrust-users"]
    assert path.stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="distinct"):
        harness.write_users_file(tmp_path / "twins.json", [carol, carol])


def test_without_auth_url_the_other_auth_annotations_do_nothing() -> None:
    ingress = web_ingress()
    del ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
    (location,) = harness.ingress_locations(ingress, ADDRESSES)[HOST]
    assert (location.auth_url, location.signin_url, location.response_headers) == (None, None, ())


def test_proxy_buffer_size_falls_back_to_the_controller_config_then_the_default() -> None:
    ingress = web_ingress()
    del ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffer-size"]
    (location,) = harness.ingress_locations(ingress, ADDRESSES, {"proxy-buffer-size": "8k"})[HOST]
    assert location.proxy_buffer_size == "8k"
    (location,) = harness.ingress_locations(ingress, ADDRESSES)[HOST]
    assert location.proxy_buffer_size == harness.DEFAULT_PROXY_BUFFER_SIZE


@pytest.mark.parametrize(
    "annotation",
    ["auth-snippet", "configuration-snippet", "auth-method", "rewrite-target", "auth-cache-key", "ssl-redirect"],
)
def test_annotations_the_harness_cannot_reproduce_are_refused(annotation: str) -> None:
    ingress = web_ingress(**{f"nginx.ingress.kubernetes.io/{annotation}": "x"})
    with pytest.raises(harness.UnsupportedObject, match=annotation):
        harness.ingress_locations(ingress, ADDRESSES)


def test_an_unmapped_service_is_refused_rather_than_guessed() -> None:
    with pytest.raises(harness.UnsupportedObject, match="colors-web"):
        harness.ingress_locations(web_ingress(), {OAUTH2_PROXY: "127.0.0.1:1"})
    with pytest.raises(harness.UnsupportedObject, match="auth-url"):
        harness.ingress_locations(web_ingress(), {COLORS_WEB: "127.0.0.1:1"})


def test_auth_url_with_an_unknown_variable_is_refused() -> None:
    ingress = web_ingress(**{"nginx.ingress.kubernetes.io/auth-signin": "https://$host/start?rd=$secret_thing"})
    with pytest.raises(harness.UnsupportedObject, match="secret_thing"):
        harness.ingress_locations(ingress, ADDRESSES)


def test_servers_merge_ingresses_of_one_host_and_skip_other_classes() -> None:
    other = copy.deepcopy(web_ingress())
    other["spec"]["ingressClassName"] = "traefik"
    other["spec"]["rules"][0]["host"] = "other.example.test"
    (server,) = harness.servers_from_ingresses([web_ingress(), oauth2_ingress(), other], ADDRESSES, CERTS)
    assert server.host == HOST
    assert [loc.nginx_path for loc in server.locations] == ["/oauth2/", "= /oauth2", "/"]


def test_two_ingresses_routing_the_same_path_are_refused() -> None:
    with pytest.raises(harness.UnsupportedObject, match="routed by both"):
        harness.servers_from_ingresses([web_ingress(), web_ingress()], ADDRESSES, CERTS)


def test_a_host_without_tls_is_refused() -> None:
    ingress = web_ingress()
    del ingress["spec"]["tls"]
    with pytest.raises(harness.UnsupportedObject, match="TLS"):
        harness.servers_from_ingresses([ingress], ADDRESSES, CERTS)


# ---- the nginx configuration ----------------------------------------------------------------


def _config(tmp_path: Path, **kwargs: t.Any) -> str:
    servers = harness.servers_from_ingresses([web_ingress(), oauth2_ingress()], ADDRESSES, CERTS)
    kwargs.setdefault("listen", "127.0.0.1:18443")
    return harness.nginx_config(
        servers,
        state_dir=tmp_path,
        default_certificate=(Path("/tls/default.crt"), Path("/tls/default.key")),
        **kwargs,
    )


def _block(config: str, start: str) -> str:
    """The text of the nginx block that begins with the line ``start`` (up to its closing brace)."""
    lines = config.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip() == start)
    depth, block = 0, []
    for line in lines[index:]:
        block.append(line.strip())
        depth += line.count("{") - line.count("}")
        if depth == 0:
            break
    return "\n".join(block)


def test_protected_location_asks_oauth2_proxy_and_redirects_401_to_signin(tmp_path: Path) -> None:
    config = _config(tmp_path)
    web = _block(config, "location / {")
    assert "auth_request        /_external-auth-Lw-Prefix;" in web
    assert "set_escape_uri $escaped_request_uri $request_uri;" in web
    signin = harness.signin_location_name("/", SIGNIN)
    assert f"error_page 401 = {signin};" in web
    assert "proxy_set_header 'X-Auth-Request-Email' $authHeader1;" in web
    assert "proxy_buffer_size                       16k;" in web
    assert "proxy_pass http://127.0.0.1:18080;" in web
    named = _block(config, f"location {signin} {{")
    assert f"return 302 {SIGNIN};" in named
    auth = _block(config, "location = /_external-auth-Lw-Prefix {")
    assert "internal;" in auth
    assert "proxy_set_header            Host                    oauth2-proxy.oauth2-proxy.svc.cluster.local;" in auth
    assert "set $target http://127.0.0.1:14180/oauth2/auth;" in auth
    assert "proxy_pass_request_body     off;" in auth


def test_oauth2_locations_are_not_protected(tmp_path: Path) -> None:
    config = _config(tmp_path)
    for start in ("location /oauth2/ {", "location = /oauth2 {"):
        block = _block(config, start)
        assert "auth_request" not in block
        assert "proxy_pass http://127.0.0.1:14180;" in block


def test_listens_on_loopback_only_and_keeps_state_in_its_dir(tmp_path: Path) -> None:
    config = _config(tmp_path, controller_config={"large-client-header-buffers": "4 16k"})
    listens = [line.strip() for line in config.splitlines() if line.strip().startswith("listen ")]
    assert listens and all(line.startswith("listen 127.0.0.1:18443 ssl") for line in listens)
    assert "large_client_header_buffers 4 16k;" in config
    paths = [
        line.split()[1].rstrip(";") for line in config.splitlines() if line.strip().startswith(("pid ", "error_log "))
    ]
    assert paths and all(p.startswith(str(tmp_path)) for p in paths)
    with pytest.raises(ValueError, match="loopback"):
        _config(tmp_path, listen="0.0.0.0:443")


def test_unknown_controller_config_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(harness.UnsupportedObject, match="use-forwarded-headers"):
        _config(tmp_path, controller_config={"use-forwarded-headers": "true"})


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed (scripts/install-system-packages)")
def test_debian_nginx_accepts_the_generated_config(tmp_path: Path) -> None:
    pki = harness.write_test_pki(tmp_path / "pki", [HOST])
    certs = {key: (pki[f"{HOST}.crt"], pki[f"{HOST}.key"]) for key in CERTS}
    servers = harness.servers_from_ingresses([web_ingress(), oauth2_ingress()], ADDRESSES, certs)
    state = tmp_path / "nginx"
    state.mkdir()
    conf = state / "nginx.conf"
    conf.write_text(
        harness.nginx_config(
            servers,
            listen="127.0.0.1:18443",
            state_dir=state,
            default_certificate=(pki["default.crt"], pki["default.key"]),
        )
    )
    result = subprocess.run(
        ["nginx", "-t", "-p", str(state), "-c", str(conf), "-e", str(state / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ---- oauth2-proxy's command line ------------------------------------------------------------


def test_invocation_is_the_container_with_exactly_two_overrides() -> None:
    invocation = harness.oauth2_proxy_invocation(
        deployment(), SECRETS, binary="/bin/o2p", http_address="127.0.0.1:1", issuer_url="http://127.0.0.1:2/oidc"
    )
    assert invocation.argv == [
        "/bin/o2p",
        "--provider=oidc",
        "--oidc-issuer-url=http://127.0.0.1:2/oidc",
        "--http-address=127.0.0.1:1",
        "--reverse-proxy=true",
        "--email-domain=*",
    ]
    assert invocation.env == {
        "OAUTH2_PROXY_CLIENT_ID": "the-client",
        "OAUTH2_PROXY_COOKIE_SECRET": "c" * 32,
        "OAUTH2_PROXY_SILENCE": "x",
    }
    assert [(o.flag, o.deployed) for o in invocation.overrides] == [
        ("--http-address", "0.0.0.0:4180"),
        ("--oidc-issuer-url", "https://login.example.test/v2.0"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(command=["/bin/sh"]), "command"),
        (lambda c: c["args"].append("--http-address=0.0.0.0:9"), "--http-address"),
        (lambda c: c["args"].remove("--oidc-issuer-url=https://login.example.test/v2.0"), "--oidc-issuer-url"),
        (lambda c: c["env"].append({"name": "X", "valueFrom": {"configMapKeyRef": {}}}), "configMapKeyRef"),
        (lambda c: c["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}), "nope"),
    ],
)
def test_invocation_refuses_what_it_cannot_reproduce(
    change: t.Callable[[dict[str, t.Any]], object], message: str
) -> None:
    changed = deployment()
    change(changed["spec"]["template"]["spec"]["containers"][0])
    with pytest.raises(harness.UnsupportedObject, match=message):
        harness.oauth2_proxy_invocation(changed, SECRETS, binary="b", http_address="a", issuer_url="i")
