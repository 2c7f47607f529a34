# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): the edge and the site certificate —
the part of the stack model (plugin_utils/_stack.py) that says which controller faces the
browser, where it runs, what every NetworkPolicy admits traffic from, where the TLS Secret lives
and who issues it.

Two edges: ``ingress-nginx`` (an Ingress per app, the controller's auth-url annotations; retired
upstream in March 2026) and ``gateway-api`` (a Gateway, an HTTPRoute per app, the implementation's
external-auth filters; Traefik is the one implementation so far, and templates live per
implementation, so a second one is a folder of templates and a name in ``IMPLEMENTATIONS``).
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils import _validation as v
from ansible_collections.zerotrust.aks.plugins.plugin_utils._stack_access import show

EDGES = ("ingress-nginx", "gateway-api")
IMPLEMENTATIONS = ("traefik",)
CRD_POLICIES = ("if-absent", "never")
TLS_MODES = ("selfsigned", "existing", "cert-manager")
ISSUER_KINDS = ("ClusterIssuer", "Issuer")
ISSUER_CREATE = ("ca", "acme", "none")

# The Gateway's listeners and the implementation's entry points share their ports (Traefik maps a
# listener to the entry point listening on the same port); unprivileged, so the controller needs
# no capability. The Service maps 443 and 80 to them.
HTTPS_LISTENER, HTTPS_PORT = "https", 8443
HTTP_LISTENER, HTTP_PORT = "http", 8000
# Names of the routes the stack makes in the route namespace besides one per app.
RESERVED_ROUTE_NAMES = ("oauth2-proxy", "http-to-https")
# Where a browser without a session is sent. ingress-nginx: the auth-signin annotation (nginx
# variables; rd must be escaped). Traefik: the errors middleware's query, {url} being the
# original request's URL, query-escaped by Traefik.
SIGNIN_URLS = {
    "ingress-nginx": "https://$host/oauth2/start?rd=$escaped_request_uri",
    "gateway-api": "/oauth2/start?rd={url}",
}
GATEWAY_API_GROUP = "gateway.networking.k8s.io"


def _bool(errors: list[str], inputs: t.Mapping[str, t.Any], name: str, default: bool) -> bool:
    value = inputs.get(name, default)
    if not isinstance(value, bool):
        errors.append(f"{name} must be true or false; got {show(value)}.")
        return default
    return value


def trusted_proxies(errors: list[str], user: t.Mapping[str, t.Any]) -> list[str]:
    """Addresses oauth2-proxy believes X-Forwarded-* from (``--trusted-proxy-ip``): the edge's pod
    addresses or CIDR. Neither edge's pod addresses are known before the cluster assigns them, so
    the model holds what the inventory gives as ``oauth2_proxy_trusted_proxy_ips`` (``[]``: the
    flag is left out and oauth2-proxy trusts every source its NetworkPolicy admits, which is the
    edge's namespace only)."""
    name = "oauth2_proxy_trusted_proxy_ips"
    value = user.get(name, [])
    if not isinstance(value, list):
        errors.append(f"{name} must be a list of IP addresses or CIDR ranges such as 10.244.0.0/16; got {show(value)}.")
        return []
    bad = [item for item in value if not v.is_ip_or_cidr(item)]
    if bad:
        errors.append(f"{name} must list IP addresses or CIDR ranges such as 10.244.0.0/16; these are not: {bad}.")
    return [str(item) for item in value if v.is_ip_or_cidr(item)]


def edge(
    errors: list[str],
    warnings: list[str],
    inputs: t.Mapping[str, t.Any],
    user: t.Mapping[str, t.Any],
    *,
    instance: str,
    namespaces: t.Mapping[str, str],
    ingress_class: str,
) -> dict[str, t.Any]:
    """The edge: ``kind``, ``namespace`` (what the NetworkPolicies of the stack admit traffic
    from), ``install`` and ``trusted_proxies`` for both kinds; ``class`` (IngressClass) for
    ingress-nginx; ``implementation``, ``gateway``, ``crds``, ``route_namespace`` for gateway-api."""
    kind = inputs.get("zerotrust_aks_edge", "ingress-nginx")
    proxies = trusted_proxies(errors, user)
    if kind != "gateway-api":
        controller = inputs.get("zerotrust_aks_ingress_controller", "ingress-nginx")
        return {
            "kind": "ingress-nginx",
            "namespace": namespaces["ingress"],
            "install": controller == "ingress-nginx",
            "class": ingress_class,
            "trusted_proxies": proxies,
            "signin_url": SIGNIN_URLS["ingress-nginx"],
        }
    ignored = [
        name
        for name in (
            "zerotrust_aks_ingress_controller",
            "zerotrust_aks_ingress_namespace",
            "zerotrust_aks_ingress_class",
        )
        if name in user
    ]
    if ignored:
        warnings.append(
            f"{', '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect with zerotrust_aks_edge "
            "gateway-api (they describe the ingress-nginx edge); the zerotrust_aks_gateway_* inputs set the Gateway."
        )
    implementation = inputs.get("zerotrust_aks_gateway_implementation", "traefik")
    install = _bool(errors, inputs, "zerotrust_aks_gateway_install", True)
    crds = inputs.get("zerotrust_aks_gateway_crds", "if-absent")
    gateway_class = inputs.get("zerotrust_aks_gateway_class") or ""
    if gateway_class == "" and not install:
        errors.append(
            "zerotrust_aks_gateway_class must name the GatewayClass of the Gateway API controller the cluster "
            "already runs when zerotrust_aks_gateway_install is false (the collection creates a GatewayClass only "
            "for the controller it installs)."
        )
    elif gateway_class and not v.is_k8s_subdomain(gateway_class):
        errors.append(
            f"zerotrust_aks_gateway_class must be a GatewayClass name (RFC 1123 subdomain), or empty for "
            f"{show(instance)}; got {show(gateway_class)}."
        )
    gateway_ns = namespaces["gateway"]
    return {
        "kind": "gateway-api",
        "namespace": gateway_ns,
        "install": install,
        "implementation": implementation,
        "crds": crds,
        "route_namespace": namespaces["oauth2_proxy"],
        "trusted_proxies": proxies,
        "signin_url": SIGNIN_URLS["gateway-api"],
        "gateway": {
            "name": instance,
            "namespace": gateway_ns,
            "class": gateway_class or instance,
            "https_listener": HTTPS_LISTENER,
            "http_listener": HTTP_LISTENER,
            "https_port": HTTPS_PORT,
            "http_port": HTTP_PORT,
        },
    }


def check_apps(errors: list[str], edge_model: t.Mapping[str, t.Any], apps: list[dict[str, t.Any]], raw: t.Any) -> None:
    """What the gateway-api edge asks of the apps on top of their own checks: every app's
    HTTPRoute and Middlewares live in the one route namespace, so app names must be unique
    there and differ from the routes the stack makes itself; ingress-nginx annotations have no
    effect on an HTTPRoute, so a user's annotations are refused rather than silently dropped."""
    if edge_model["kind"] != "gateway-api":
        return
    seen: dict[str, str] = {}
    for app in apps:
        name = app["name"]
        if app["demo"]:
            seen[name] = app["namespace"]
            continue
        where = f"zerotrust_aks_apps[{_index(raw, app)}] ({name})"
        if app["annotations"]:
            errors.append(
                f"{where}.annotations: {', '.join(sorted(app['annotations']))} are ingress-nginx annotations and have "
                "no effect with zerotrust_aks_edge gateway-api; remove them."
            )
        if name in RESERVED_ROUTE_NAMES:
            errors.append(
                f"{where}.name {show(name)} is the name of a route the stack makes in "
                f"{edge_model['route_namespace']} ({', '.join(RESERVED_ROUTE_NAMES)}); choose another name."
            )
        elif name in seen:
            errors.append(
                f"{where}: another app in {seen[name]} has the name {show(name)}; with zerotrust_aks_edge gateway-api "
                f"every app's HTTPRoute lives in {edge_model['route_namespace']}, so app names must be unique."
            )
        seen.setdefault(name, app["namespace"])


def _index(raw: t.Any, app: t.Mapping[str, t.Any]) -> int:
    """The position of APP in the user's zerotrust_aks_apps (messages name it as the user wrote it)."""
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(item, t.Mapping) and (item.get("name"), item.get("namespace")) == (app["name"], app["namespace"]):
            return index
    return -1


def _issuer(errors: list[str], inputs: t.Mapping[str, t.Any], instance: str, create: str) -> dict[str, str]:
    name = "zerotrust_aks_cert_manager_issuer"
    value = inputs.get(name, {"kind": "ClusterIssuer", "name": ""})
    if not isinstance(value, t.Mapping) or set(value) - {"kind", "name"}:
        errors.append(f"{name} must be a mapping with kind (ClusterIssuer or Issuer) and name; got {show(value)}.")
        return {"kind": "ClusterIssuer", "name": ""}
    kind = value.get("kind", "ClusterIssuer")
    given = value.get("name") or ""
    if kind not in ISSUER_KINDS:
        errors.append(f"{name}.kind must be one of {', '.join(ISSUER_KINDS)}; got {show(kind)}.")
    if given and not v.is_k8s_subdomain(given):
        errors.append(f"{name}.name must be an issuer name (RFC 1123 subdomain); got {show(given)}.")
    if given:
        return {"kind": str(kind), "name": str(given)}
    if create == "none":
        errors.append(
            f"{name}.name must name an existing {kind} when zerotrust_aks_cert_manager_issuer_create is none "
            "(the collection creates no issuer then)."
        )
        return {"kind": str(kind), "name": ""}
    if kind != "ClusterIssuer":
        errors.append(
            f"{name}.kind is Issuer, but the issuer zerotrust_aks_cert_manager_issuer_create {create} makes is a "
            "ClusterIssuer: leave kind at ClusterIssuer, or name your own Issuer."
        )
    return {"kind": "ClusterIssuer", "name": f"{instance}-{create}"}


def tls(
    errors: list[str],
    inputs: t.Mapping[str, t.Any],
    *,
    instance: str,
    edge_model: t.Mapping[str, t.Any],
    secret_name: str,
    hosts: list[str],
    app_namespaces: list[str],
    namespaces: t.Mapping[str, str],
) -> dict[str, t.Any]:
    """The site certificate: ``mode``, ``secret_name``, ``hosts``, ``namespaces`` (where the
    Secret must be: the Gateway reads it from its own namespace; an Ingress from its own, so
    oauth2-proxy's and every app's) and ``cert_manager`` (issuer, what to create, install,
    namespace, ACME server, e-mail and HTTP-01 solver)."""
    mode = inputs.get("zerotrust_aks_tls_mode", "selfsigned")
    if edge_model["kind"] == "gateway-api":
        where = [edge_model["gateway"]["namespace"]]
    else:
        where = list(dict.fromkeys([namespaces["oauth2_proxy"], *app_namespaces]))
    create = inputs.get("zerotrust_aks_cert_manager_issuer_create", "ca")
    install = _bool(errors, inputs, "zerotrust_aks_cert_manager_install", False)
    cm_namespace = inputs.get("zerotrust_aks_cert_manager_namespace", "cert-manager")
    server = inputs.get("zerotrust_aks_acme_server", "")
    email = inputs.get("zerotrust_aks_acme_email", "")
    result = {"mode": mode, "secret_name": secret_name, "namespaces": where, "hosts": hosts}
    if mode != "cert-manager":
        return {**result, "cert_manager": None}
    if not v.is_k8s_name(cm_namespace):
        errors.append(
            f"zerotrust_aks_cert_manager_namespace must be a namespace name (RFC 1123 label); got {show(cm_namespace)}."
        )
    elif install and v.is_system_namespace(cm_namespace):
        errors.append(
            f"zerotrust_aks_cert_manager_namespace is {show(cm_namespace)}, a system namespace: the collection "
            "installs cert-manager in a namespace of its own and teardown removes it."
        )
    elif cm_namespace in namespaces.values():
        errors.append(
            f"zerotrust_aks_cert_manager_namespace {show(cm_namespace)} is also a namespace of the stack's "
            "components; give cert-manager a namespace of its own."
        )
    issuer = _issuer(errors, inputs, instance, str(create))
    acme: dict[str, t.Any] | None = None
    if create == "acme":
        if not (isinstance(server, str) and server.startswith("https://") and v.is_http_url(server)):
            errors.append(
                "zerotrust_aks_acme_server must be the https URL of an ACME directory, such as "
                f"https://acme-v02.api.letsencrypt.org/directory; got {show(server)}."
            )
        if not v.is_email(email):
            errors.append(
                "zerotrust_aks_acme_email must be the e-mail address the ACME server registers the account with "
                f"(it sends expiry notices there); got {show(email)}."
            )
        acme = {"server": server, "email": email, "solver": http01_solver(edge_model)}
    return {
        **result,
        "cert_manager": {
            "issuer": issuer,
            "create": create,
            "install": install,
            "namespace": cm_namespace,
            "acme": acme,
        },
    }


def http01_solver(edge_model: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """cert-manager's HTTP-01 solver through the chosen edge: a route on the Gateway's http
    listener, or an Ingress of the controller's IngressClass."""
    if edge_model["kind"] == "gateway-api":
        gateway = edge_model["gateway"]
        return {
            "gatewayHTTPRoute": {
                "parentRefs": [
                    {
                        "group": GATEWAY_API_GROUP,
                        "kind": "Gateway",
                        "name": gateway["name"],
                        "namespace": gateway["namespace"],
                        "sectionName": gateway["http_listener"],
                    }
                ]
            }
        }
    return {"ingress": {"ingressClassName": edge_model["class"]}}
