"""The login flow through real Traefik: what a user's browser sees at the Gateway.

Traefik reads the Gateway, HTTPRoutes, ReferenceGrants and Middlewares the stack applied to the
suite's testbed and routes to the Pod IPs of the EndpointSlices, where oauth2-proxy (the
Deployment's args and Secrets) and stand-in apps answer; the forward-auth request goes to
oauth2-proxy's cluster DNS name. The scripted browser resolves the site's hosts to Traefik's
Service. The same checks as tests/authflow/test_login_flow.py (nginx), where Traefik differs
said so: its sign-in Middleware asks oauth2-proxy's ``/oauth2/start?rd=<the whole URL>`` itself
and hands the browser oauth2-proxy's answer — the redirect to the IdP — with no hop through
``/oauth2/start`` in the browser.
"""

from __future__ import annotations

import base64
import datetime
import socket
import ssl
import typing as t
import urllib.parse

import pytest
import requests
from authflow import harness
from controlplane import certmanager
from cryptography import x509
from cryptography.x509.oid import NameOID
from kubernetes import client

from .checks import (
    authorize_query,
    condition,
    cookie_name,
    echoed,
    echoed_headers,
    hops,
    log_in,
    redirect_target,
    sent_to_idp,
)
from .cluster import ClusterState, read_cluster
from .conftest import GatewayTestbed
from .edge import GatewayEdge, deployed_entrypoints

COLORS_API = harness.service_key("colors-api", 80, "colors-api")
COLORS_WEB = harness.service_key("colors-web", 80, "colors-web")


# ---- the harness runs what was applied -----------------------------------------------------


def test_oauth2_proxy_runs_the_deployed_args_with_only_address_and_issuer_changed(
    edge: GatewayEdge, applied_objects: harness.AppliedObjects
) -> None:
    container = applied_objects.deployment["spec"]["template"]["spec"]["containers"][0]
    assert len(edge.oauth2_proxy) == applied_objects.deployment["spec"]["replicas"]
    for invocation in edge.oauth2_proxy:
        overridden = {o.flag for o in invocation.overrides}
        assert overridden == {"--http-address", "--oidc-issuer-url"}
        (address,) = [o for o in invocation.overrides if o.flag == "--http-address"]
        assert address.deployed == "0.0.0.0:4180" and address.used.endswith(":4180")  # a Pod IP, same port
        kept = [arg for arg in invocation.argv[1:] if arg.split("=", 1)[0] not in overridden]
        assert kept == [arg for arg in container["args"] if arg.split("=", 1)[0] not in overridden]


def test_traefik_runs_the_deployed_args_with_only_addresses_and_api_server_added(
    edge: GatewayEdge, cluster_state: ClusterState
) -> None:
    (workload,) = cluster_state.workloads_with_image("docker.io/traefik")
    deployed = [str(a) for a in workload.container()["args"]]
    ports = deployed_entrypoints(deployed)
    assert len(edge.traefik) == len(workload.pod_ips) == workload.deployment["spec"]["replicas"]
    for invocation in edge.traefik:
        argv = invocation.argv[1:]
        # Every deployed flag is there, after the harness's own (later flags win in Traefik)
        # — except the entrypoint addresses, which move from all addresses to the Pod IP.
        tail = argv[len(argv) - len([a for a in deployed if ".address=" not in a.lower()]) :]
        assert tail == [a for a in deployed if ".address=" not in a.lower()]
        for name, port in ports.items():
            assert f"--entrypoints.{name}.address={invocation.pod_ip}:{port}" in argv


def test_traefik_accepted_every_route_and_the_gateway(edge: GatewayEdge, gateway_testbed: GatewayTestbed) -> None:
    """Traefik wrote status: the Gateway is Programmed, each route Accepted with its refs resolved
    (the ReferenceGrants let oauth2-proxy's namespace reach the apps' Services)."""
    state = read_cluster(gateway_testbed.api)
    for gateway in state.gateways:
        programmed = condition(gateway, "Programmed")
        assert programmed and programmed["status"] == "True", gateway.get("status")
    for route in state.httproutes:
        for parent in route["status"]["parents"]:
            conditions = {c["type"]: c for c in parent["conditions"]}
            name = f"{route['metadata']['namespace']}/{route['metadata']['name']} -> {parent['parentRef']}"
            assert conditions["Accepted"]["status"] == "True", (name, conditions)
            assert conditions["ResolvedRefs"]["status"] == "True", (name, conditions)


# ---- unauthenticated ----------------------------------------------------------------------


def test_unauthenticated_request_is_sent_to_the_idp_with_the_url_to_come_back_to(
    edge: GatewayEdge, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    response = browser.get("/")
    assert sent_to_idp(response, edge), (response.status_code, response.headers)
    query = authorize_query(response)
    assert query["client_id"] == [edge.oauth2_proxy[0].env["OAUTH2_PROXY_CLIENT_ID"]]
    assert query["redirect_uri"] == [f"https://{edge.host}/oauth2/callback"]
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert set(query["scope"][0].split()) >= {"openid", "email"}
    assert redirect_target(response) == f"https://{edge.host}/"
    # oauth2-proxy's /oauth2/start set the CSRF cookie; Traefik passed it on to the browser.
    assert f"{cookie_name(applied_objects)}_" in response.headers.get("Set-Cookie", "")


def test_the_signin_middleware_asks_oauth2_start_with_the_request_url(
    edge: GatewayEdge, browser: harness.ScriptedBrowser
) -> None:
    response = browser.get("/some/page?x=1&y=a%20b")
    assert sent_to_idp(response, edge)
    assert redirect_target(response) == f"https://{edge.host}/some/page?x=1&y=a%20b"
    # The request oauth2-proxy got (its request log): /oauth2/start?rd=<URL, query-escaped>.
    rd = urllib.parse.quote_plus(f"https://{edge.host}/some/page?x=1&y=a%20b")
    logs = "".join(p.log_path.read_text() for p in edge.processes if p.name.startswith("oauth2-proxy"))
    assert f"/oauth2/start?rd={rd}" in logs


def test_oauth2_start_sends_the_browser_to_the_idp(edge: GatewayEdge, browser: harness.ScriptedBrowser) -> None:
    response = browser.get("/oauth2/start?rd=%2F")
    assert sent_to_idp(response, edge)
    assert redirect_target(response) == "/"


def test_oauth2_auth_without_cookie_is_401(browser: harness.ScriptedBrowser) -> None:
    assert browser.get("/oauth2/auth").status_code == 401


def test_the_idp_refuses_a_wrong_password(
    edge: GatewayEdge, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    form = browser.navigate("/")
    assert browser.is_login_form(form), hops(browser)
    assert browser.submit_login(form, edge.user.username, "wrong").status_code == 401
    assert browser.cookie(cookie_name(applied_objects)) is None


def test_plain_http_is_redirected_to_https(edge: GatewayEdge) -> None:
    session = requests.Session()
    session.trust_env = False
    response = session.get(
        f"http://{edge.address}:{edge.http_port}/colors?x=1", headers={"Host": edge.host}, allow_redirects=False,
        timeout=10,
    )  # fmt: skip
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{edge.host}/colors?x=1"


# ---- logging in ---------------------------------------------------------------------------


def test_after_login_the_app_gets_the_users_identity(edge: GatewayEdge, browser: harness.ScriptedBrowser) -> None:
    before = len(edge.requests_to(COLORS_WEB))
    response = log_in(edge, browser, "/colors?x=1")
    answer = echoed(response)
    assert answer["upstream"] == "colors-web", hops(browser)
    assert response.url == f"https://{edge.host}/colors?x=1", hops(browser)
    assert answer["path"] == "/colors?x=1"
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    assert headers.get("x-auth-request-email") == edge.user.email, answer["headers"]
    assert headers.get("x-auth-request-user") == edge.user.username, answer["headers"]
    assert headers.get("x-auth-request-groups") == ",".join(edge.user.groups), answer["headers"]
    assert headers.get("x-forwarded-proto") == "https"
    assert headers.get("host") == edge.host
    assert len(edge.requests_to(COLORS_WEB)) == before + 1


def test_the_app_gets_exactly_the_headers_its_auth_middleware_names(
    edge: GatewayEdge, browser: harness.ScriptedBrowser
) -> None:
    middleware = edge.state.middleware("oauth2-proxy", "colors-web-auth")
    asked = middleware["spec"]["forwardAuth"]["authResponseHeaders"]
    assert asked
    received = {k.lower() for k in echoed(log_in(edge, browser))["headers"]}
    missing = [h for h in asked if h.lower() not in received]
    assert not missing, f"oauth2-proxy's /oauth2/auth does not set {missing}; the app never gets them"


TOKEN_HEADERS = ("authorization", "x-auth-request-access-token")


def test_no_token_reaches_an_app_that_did_not_ask_for_it(edge: GatewayEdge, browser: harness.ScriptedBrowser) -> None:
    """oauth2-proxy's /oauth2/auth sets the access token header (the wiki asks for it, so
    oauth2-proxy passes tokens), but colors-web's Middleware does not name it: the app gets none."""
    asked = edge.state.middleware("oauth2-proxy", "colors-web-auth")["spec"]["forwardAuth"]["authResponseHeaders"]
    assert not {h.lower() for h in asked} & set(TOKEN_HEADERS)
    headers = echoed_headers(log_in(edge, browser))
    assert not [h for h in TOKEN_HEADERS if headers.get(h)], headers
    auth = browser.get("/oauth2/auth")
    assert auth.status_code == 202
    assert auth.headers.get("X-Auth-Request-Access-Token", "").count(".") == 2


@pytest.mark.parametrize("header", ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"])
def test_an_identity_header_the_client_sends_never_reaches_the_app(
    edge: GatewayEdge, browser: harness.ScriptedBrowser, header: str
) -> None:
    """forwardAuth replaces each authResponseHeaders header with oauth2-proxy's value."""
    log_in(edge, browser)
    response = browser.get("/", headers={header: "admin,zerotrust-admins"})
    headers = echoed_headers(response)
    assert "admin" not in headers.get(header.lower(), ""), headers
    assert headers[header.lower()] in (edge.user.username, edge.user.email, ",".join(edge.user.groups))


def test_an_identity_header_without_a_session_gets_nowhere(edge: GatewayEdge, browser: harness.ScriptedBrowser) -> None:
    before = len(edge.requests_to(COLORS_WEB))
    response = browser.get("/", headers={"X-Auth-Request-User": edge.user.username, "X-Forwarded-User": "jane"})
    assert sent_to_idp(response, edge)
    assert len(edge.requests_to(COLORS_WEB)) == before


def test_the_session_cookie_is_host_only_secure_and_http_only(
    edge: GatewayEdge, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    log_in(edge, browser)
    name = cookie_name(applied_objects)
    assert name.startswith("__Host-")
    cookies = [c for c in browser.session.cookies if c.name == name]
    assert len(cookies) == 1, [c.name for c in browser.session.cookies]
    cookie = cookies[0]
    assert cookie.secure
    assert cookie.path == "/"
    assert not cookie.domain_specified
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert (cookie.get_nonstandard_attr("SameSite") or "").lower() == "lax"


def test_oauth2_auth_with_the_session_cookie_is_202(edge: GatewayEdge, browser: harness.ScriptedBrowser) -> None:
    log_in(edge, browser)
    response = browser.get("/oauth2/auth")
    assert response.status_code == 202
    assert response.headers.get("X-Auth-Request-Email") == edge.user.email


def test_sign_out_ends_the_session(
    edge: GatewayEdge, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects
) -> None:
    assert echoed(log_in(edge, browser))["upstream"] == "colors-web"
    name = cookie_name(applied_objects)
    assert browser.cookie(name)
    response = browser.get("/oauth2/sign_out")
    assert response.status_code == 302, response.text[:300]
    assert browser.cookie(name) is None, "sign-out left the session cookie in the browser"
    assert browser.get("/oauth2/auth").status_code == 401
    assert sent_to_idp(browser.get("/"), edge)


# ---- tampering and open redirects -----------------------------------------------------------


def _tamper(value: str, part: int) -> str:
    parts = value.split("|")
    assert len(parts) == 3, f"unexpected session cookie format: {value[:40]}..."
    target = parts[part]
    middle = len(target) // 2
    parts[part] = target[:middle] + ("A" if target[middle] != "A" else "B") + target[middle + 1 :]
    return "|".join(parts)


@pytest.mark.parametrize("part", [0, 1, 2], ids=["payload", "timestamp", "signature"])
def test_a_tampered_session_cookie_is_refused(
    edge: GatewayEdge, browser: harness.ScriptedBrowser, applied_objects: harness.AppliedObjects, part: int
) -> None:
    assert echoed(log_in(edge, browser))["upstream"] == "colors-web"
    name = cookie_name(applied_objects)
    value = browser.cookie(name)
    assert value
    browser.set_cookie(name, _tamper(value, part))
    before = len(edge.requests_to(COLORS_WEB))
    assert browser.get("/oauth2/auth").status_code == 401
    assert sent_to_idp(browser.get("/"), edge)
    assert len(edge.requests_to(COLORS_WEB)) == before


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
def test_login_never_sends_the_browser_off_site(edge: GatewayEdge, browser: harness.ScriptedBrowser, rd: str) -> None:
    rd = rd.format(host=edge.host)
    response = log_in(edge, browser, "/oauth2/start?" + urllib.parse.urlencode({"rd": rd}))
    final = urllib.parse.urlsplit(response.url)
    assert (final.scheme, final.hostname) == ("https", edge.host), hops(browser)
    assert echoed(response)["upstream"] == "colors-web", hops(browser)
    for hop in browser.history:
        if hop.location:
            target = urllib.parse.urlsplit(urllib.parse.urljoin(hop.url, hop.location))
            assert target.hostname in {*edge.hosts, "127.0.0.1"}, hops(browser)


# ---- the API stays internal -----------------------------------------------------------------


def test_no_route_leads_to_the_api(cluster_state: ClusterState) -> None:
    backends = cluster_state.backend_keys()
    assert COLORS_WEB in backends
    assert COLORS_API not in backends


@pytest.mark.parametrize("api_host", ["colors-api.colors-api.svc.cluster.local", "colors-api", "api.{host}"])
def test_a_request_for_the_api_host_gets_404(
    edge: GatewayEdge, browser: harness.ScriptedBrowser, api_host: str
) -> None:
    before = len(edge.requests_to(COLORS_API))
    response = browser.get("/colors/random", headers={"Host": api_host.format(host=edge.host)})
    assert response.status_code == 404
    assert len(edge.requests_to(COLORS_API)) == before


def test_api_paths_on_the_site_need_login_and_never_reach_the_api(
    edge: GatewayEdge, browser: harness.ScriptedBrowser
) -> None:
    assert edge.upstreams[COLORS_API], "the API's Pods have stand-ins: a stray route would show"
    before = len(edge.requests_to(COLORS_API))
    assert sent_to_idp(browser.get("/colors/random"), edge)
    assert echoed(log_in(edge, browser, "/colors/random"))["upstream"] == "colors-web", hops(browser)
    assert len(edge.requests_to(COLORS_API)) == before


# ---- TLS ----------------------------------------------------------------------------------


def test_the_served_certificate_names_the_site_host(edge: GatewayEdge, cluster_state: ClusterState) -> None:
    """What Traefik serves is the listener's Secret, its subject the site host, valid now."""
    for host in edge.hosts:
        served = x509.load_der_x509_certificate(edge.served_certificate(host))
        assert served == x509.load_pem_x509_certificate(edge.certificate_pem)
        names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert host in names.get_values_for_type(x509.DNSName)
    served = x509.load_der_x509_certificate(edge.served_certificate())
    assert served.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == edge.host
    now = datetime.datetime.now(datetime.UTC)
    assert served.not_valid_before_utc <= now < served.not_valid_after_utc


def test_the_certificate_verifies_for_the_site_host(edge: GatewayEdge) -> None:
    context = ssl.create_default_context(cafile=str(edge.ca_file))
    with (
        socket.create_connection((edge.address, edge.https_port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=edge.host) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def _cert_manager_object(api: client.ApiClient, plural: str, name: str, namespace: str = "") -> dict[str, t.Any]:
    custom = client.CustomObjectsApi(api)
    if namespace:
        found = custom.get_namespaced_custom_object("cert-manager.io", "v1", namespace, plural, name)
    else:
        found = custom.get_cluster_custom_object("cert-manager.io", "v1", plural, name)
    return t.cast(dict[str, t.Any], found)


def _ready(obj: t.Mapping[str, t.Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or []
    )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def test_the_served_certificate_is_the_one_cert_manager_issued_with_the_collections_ca(
    edge: GatewayEdge, gateway_testbed: GatewayTestbed, stack_vars: dict[str, t.Any]
) -> None:
    """cert-manager mode (stack.yml) with the issuer chain the collection creates: the site
    Certificate <instance>-site in the Gateway's namespace is Ready and wrote the listener's
    Secret; ClusterIssuer <instance>-ca signed it with the CA Certificate <instance>-ca, which
    ClusterIssuer <instance>-selfsigned made; Traefik serves exactly that leaf, and the browsers
    trust only that CA (never the leaf itself)."""
    assert stack_vars["zerotrust_aks_tls_mode"] == "cert-manager"
    api = gateway_testbed.api
    (gateway,) = edge.state.gateways
    instance, namespace = gateway["metadata"]["name"], gateway["metadata"]["namespace"]  # named after the instance
    (secret_name,) = {
        ref["name"]
        for listener in gateway["spec"]["listeners"]
        for ref in (listener.get("tls") or {}).get("certificateRefs") or []
    }

    site = _cert_manager_object(api, "certificates", f"{instance}-site", namespace)
    assert _ready(site), site.get("status")
    assert site["spec"]["secretName"] == secret_name
    assert site["spec"]["dnsNames"][0] == edge.host
    assert sorted(site["spec"]["dnsNames"]) == sorted(edge.hosts)
    assert site["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": f"{instance}-ca"}
    ca_issuer = _cert_manager_object(api, "clusterissuers", f"{instance}-ca")
    assert _ready(ca_issuer), ca_issuer.get("status")
    ca_certificate = _cert_manager_object(api, "certificates", f"{instance}-ca", certmanager.NAMESPACE)
    assert _ready(ca_certificate), ca_certificate.get("status")
    assert ca_certificate["spec"]["isCA"] is True
    assert ca_certificate["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]
    assert ca_certificate["spec"]["issuerRef"]["name"] == f"{instance}-selfsigned"
    assert _ready(_cert_manager_object(api, "clusterissuers", f"{instance}-selfsigned"))

    core = client.CoreV1Api(api)
    listener_secret = core.read_namespaced_secret(secret_name, namespace)
    annotations = (listener_secret.metadata and listener_secret.metadata.annotations) or {}
    assert annotations.get("cert-manager.io/certificate-name") == f"{instance}-site", annotations
    assert annotations.get("cert-manager.io/issuer-name") == f"{instance}-ca", annotations
    ca_data = core.read_namespaced_secret(ca_certificate["spec"]["secretName"], certmanager.NAMESPACE).data or {}
    ca = x509.load_pem_x509_certificate(base64.b64decode(ca_data["tls.crt"]))
    assert ca.subject == ca.issuer, "the CA should be a self-signed root (ClusterIssuer selfSigned)"
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{instance} CA"
    assert _is_ca(ca)

    for host in edge.hosts:
        served = x509.load_der_x509_certificate(edge.served_certificate(host))
        assert served == x509.load_pem_x509_certificate(base64.b64decode((listener_secret.data or {})["tls.crt"]))
        assert served.issuer == ca.subject
        served.verify_directly_issued_by(ca)
        assert served.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == edge.host
        names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == site["spec"]["dnsNames"]
        assert not _is_ca(served)
    # What the browsers of this suite trust: the CA alone (the Secret's ca.crt), not the leaf.
    assert x509.load_pem_x509_certificates(edge.ca_file.read_bytes()) == [ca]
