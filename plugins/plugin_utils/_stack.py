# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): the stack model.

Every shared fact of the stack — component names, namespaces, the IngressClass and the
controller's namespace, Secret and Key Vault object names, identity, labels — is computed here,
once, from the ``zerotrust_aks_*`` inputs. Component roles take their defaults from the model and
never re-type another component's name or namespace.

Inventory variables beat role defaults, so a user may set a component's own input directly
(``oauth2_proxy_namespace: auth``). The model takes such a setting into account (every reference
to that namespace follows it), refuses two settings of the same fact that disagree (naming both
variables), and refuses the retired inputs that used to copy another component's facts.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.zerotrust.aks.plugins.module_utils import _validation as v
from ansible_collections.zerotrust.aks.plugins.plugin_utils import _stack_access as access
from ansible_collections.zerotrust.aks.plugins.plugin_utils import _stack_apps as protected
from ansible_collections.zerotrust.aks.plugins.plugin_utils import _stack_edge as edges

MANAGED_BY = "zerotrust.aks"
OAUTH2_PROXY_PORT = 4180
# The colors apps listen on 8080 (.NET 8+); their Services expose port 80.
SERVICE_PORT = 80


@dataclass(frozen=True)
class Fact:
    """One shared fact: the stack input that sets it, and the component inputs that may too."""

    key: str
    variable: str
    aliases: tuple[str, ...]
    check: t.Callable[[t.Any], bool]
    allowed: str


FACTS: tuple[Fact, ...] = (
    Fact(
        "ingress_namespace",
        "zerotrust_aks_ingress_namespace",
        ("ingress_nginx_namespace",),
        v.is_k8s_name,
        "a namespace name (RFC 1123 label)",
    ),
    Fact(
        "ingress_class",
        "zerotrust_aks_ingress_class",
        ("ingress_nginx_class_name",),
        v.is_k8s_subdomain,
        "an IngressClass name (RFC 1123 subdomain)",
    ),
    Fact(
        "gateway_namespace",
        "zerotrust_aks_gateway_namespace",
        ("gateway_api_namespace",),
        v.is_k8s_name,
        "a namespace name (RFC 1123 label)",
    ),
    Fact(
        "oauth2_proxy_namespace",
        "zerotrust_aks_oauth2_proxy_namespace",
        ("oauth2_proxy_namespace", "app_secrets_namespace", "keyvault_access_namespace"),
        v.is_k8s_name,
        "a namespace name (RFC 1123 label)",
    ),
    Fact(
        "colors_web_namespace",
        "zerotrust_aks_colors_web_namespace",
        ("colors_web_namespace",),
        v.is_k8s_name,
        "a namespace name (RFC 1123 label)",
    ),
    Fact(
        "colors_api_namespace",
        "zerotrust_aks_colors_api_namespace",
        ("colors_api_namespace",),
        v.is_k8s_name,
        "a namespace name (RFC 1123 label)",
    ),
    Fact(
        "tls_secret_name",
        "zerotrust_aks_tls_secret_name",
        ("tls_secret_name",),
        v.is_k8s_subdomain,
        "a Secret name (RFC 1123 subdomain)",
    ),
    Fact(
        "keyvault_client_id",
        "zerotrust_aks_client_id_secret_name",
        ("entra_app_client_id_secret_name",),
        v.is_keyvault_secret_name,
        "a Key Vault secret name (1-127 letters, digits, dashes)",
    ),
    Fact(
        "keyvault_client_secret",
        "zerotrust_aks_client_secret_secret_name",
        ("entra_app_client_secret_secret_name",),
        v.is_keyvault_secret_name,
        "a Key Vault secret name (1-127 letters, digits, dashes)",
    ),
    Fact(
        "keyvault_cookie_secret",
        "zerotrust_aks_cookie_secret_name",
        ("keyvault_cookie_secret_name",),
        v.is_keyvault_secret_name,
        "a Key Vault secret name (1-127 letters, digits, dashes)",
    ),
)

# Inputs that used to copy another component's fact (and so could contradict it). Setting one is
# refused, saying what replaced it.
RETIRED: dict[str, str] = {
    "oauth2_proxy_platform": "set zerotrust_aks_platform instead",
    "app_secrets_platform": "set zerotrust_aks_platform instead",
    "oauth2_proxy_host": "set zerotrust_aks_host instead",
    "colors_web_host": "set zerotrust_aks_host instead",
    "tls_host": "set zerotrust_aks_host instead",
    "tls_mode": "set zerotrust_aks_tls_mode instead",
    "tls_render": "set zerotrust_aks_render_dir instead",
    "app_secrets_render": "set zerotrust_aks_render_dir instead",
    "oauth2_proxy_identity_mode": "set zerotrust_aks_identity_mode instead",
    "app_secrets_identity_mode": "set zerotrust_aks_identity_mode instead",
    "oauth2_proxy_identity_client_id": "set zerotrust_aks_identity_client_id instead",
    "app_secrets_identity_client_id": "set zerotrust_aks_identity_client_id instead",
    "oauth2_proxy_tenant_id": "set zerotrust_aks_tenant_id instead",
    "app_secrets_tenant_id": "set zerotrust_aks_tenant_id instead",
    "app_secrets_keyvault_name": "set zerotrust_aks_keyvault_name instead",
    "oauth2_proxy_ingress_class": "set zerotrust_aks_ingress_class instead",
    "colors_web_ingress_class": "set zerotrust_aks_ingress_class instead",
    "oauth2_proxy_ingress_namespace": "set zerotrust_aks_ingress_namespace instead",
    "colors_web_ingress_namespace": "set zerotrust_aks_ingress_namespace instead",
    "colors_web_oauth2_proxy_namespace": "set zerotrust_aks_oauth2_proxy_namespace instead",
    "colors_web_oauth2_proxy_service": "the oauth2_proxy role names its Service oauth2-proxy",
    "colors_web_oauth2_proxy_port": "the oauth2_proxy role's Service always listens on 4180",
    "colors_api_client_namespace": "set zerotrust_aks_colors_web_namespace instead",
    "colors_web_tls_secret_name": "set zerotrust_aks_tls_secret_name instead",
    "oauth2_proxy_tls_secret_name": "set zerotrust_aks_tls_secret_name instead",
    "tls_namespaces": "the stack model puts the TLS Secret in every namespace with an Ingress for the host",
    "oauth2_proxy_secret_names": "set app_secrets_secret_names instead",
    "oauth2_proxy_secret_provider_class": "set app_secrets_secret_provider_class_name instead",
    "keyvault_access_service_account": "the federated credential names the stack's oauth2-proxy ServiceAccount",
    "app_secrets_keyvault_object_names": (
        "set zerotrust_aks_client_id_secret_name, zerotrust_aks_client_secret_secret_name "
        "and zerotrust_aks_cookie_secret_name instead"
    ),
    "app_secrets_client_id": "set zerotrust_aks_client_id instead",
    "app_secrets_client_secret": "set zerotrust_aks_client_secret instead",
    "app_secrets_cookie_secret": "set zerotrust_aks_cookie_secret instead",
    "tls_selfsigned_not_after": "set tls_selfsigned_valid_days (a number of days) instead",
    "tls_renew_before": "set tls_renew_before_days (a number of days) instead",
    "colors_web_proxy_buffer_size": (
        "set protected_apps_proxy_buffer_size instead (the protected_apps role renders the Ingress)"
    ),
    "colors_web_affinity_cookie_name": (
        f"the colors-web Ingress (role protected_apps) names its affinity cookie {protected.COLORS_WEB_AFFINITY_COOKIE}"
    ),
}

SECRET_ITEMS = ("client_id", "client_secret", "cookie_secret")
DEFAULT_SECRET_NAMES = {"client_id": "client-id", "client_secret": "client-secret", "cookie_secret": "cookie-secret"}
DEFAULT_SECRET_PROVIDER_CLASS = "oauth2-proxy"  # noqa: S105 - a name, not a secret
# oauth2-proxy's session cookie. __Host-: host-only, Secure, path /; the browser refuses it otherwise.
DEFAULT_COOKIE_NAME = "__Host-oauth2-proxy"

CHOICES: dict[str, tuple[str, ...]] = {
    "zerotrust_aks_platform": ("aks", "local"),
    "zerotrust_aks_ingress_controller": ("ingress-nginx", "none"),
    "zerotrust_aks_edge": edges.EDGES,
    "zerotrust_aks_gateway_implementation": edges.IMPLEMENTATIONS,
    "zerotrust_aks_gateway_crds": edges.CRD_POLICIES,
    "zerotrust_aks_identity_mode": ("addon", "workload"),
    "zerotrust_aks_tls_mode": edges.TLS_MODES,
    "zerotrust_aks_cert_manager_issuer_create": edges.ISSUER_CREATE,
    "zerotrust_aks_purpose": ("apply", "teardown", "verify"),
    "zerotrust_aks_client_auth": access.CLIENT_AUTH,
}


def _show(value: t.Any) -> str:
    return repr(value) if not isinstance(value, str) else f'"{value}"'


class _Inputs:
    """The stack role's inputs (defaults applied) and what the user set in the inventory."""

    def __init__(self, inputs: t.Mapping[str, t.Any], user: t.Mapping[str, t.Any]) -> None:
        self.inputs = inputs
        self.user = user
        self.errors: list[str] = []

    def user_set(self, name: str) -> bool:
        return name in self.user

    def fact(self, fact: Fact) -> str:
        """The fact's value: the stack input, or the one component input the user set instead."""
        chosen: dict[str, t.Any] = {}
        if self.user_set(fact.variable):
            chosen[fact.variable] = self.user[fact.variable]
        for alias in fact.aliases:
            if self.user_set(alias):
                chosen[alias] = self.user[alias]
        distinct = {str(value) for value in chosen.values()}
        if len(distinct) > 1:
            settings = ", ".join(f"{name}={_show(value)}" for name, value in chosen.items())
            self.errors.append(
                f"{' and '.join(chosen)} set the same {fact.key.replace('_', ' ')} to different values ({settings}); "
                f"set only {fact.variable}."
            )
        name, value = next(iter(chosen.items())) if chosen else (fact.variable, self.inputs.get(fact.variable))
        if not fact.check(value):
            self.errors.append(f"{name} must be {fact.allowed}; got {_show(value)}.")
        return str(value)


def compute(inputs: t.Mapping[str, t.Any], user: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The stack model. ``inputs``: the stack role's zerotrust_aks_* variables as the role sees
    them; ``user``: the host's inventory and extra variables (hostvars), to find component-level
    settings. The result has ``errors`` (a list of messages, empty when the inputs are good)."""
    src = _Inputs(inputs, user)
    errors = src.errors

    for name in sorted(RETIRED):
        if src.user_set(name):
            errors.append(f"{name} is no longer an input: {RETIRED[name]}.")
    for name, choices in CHOICES.items():
        if name in inputs and inputs[name] not in choices:
            errors.append(f"{name} must be one of {', '.join(choices)}; got {_show(inputs[name])}.")

    instance = inputs.get("zerotrust_aks_instance")
    if not v.is_k8s_name(instance):
        errors.append(f"zerotrust_aks_instance must be an RFC 1123 label (it is a label value); got {_show(instance)}.")
    platform = inputs.get("zerotrust_aks_platform")
    purpose = inputs.get("zerotrust_aks_purpose", "apply")
    host = inputs.get("zerotrust_aks_host")
    if not v.is_dns_name(host):
        errors.append(
            "zerotrust_aks_host must be the site's lower-case DNS name with at least two labels, "
            f"such as colors.example.com; got {_show(host)}."
        )
    render_dir = inputs.get("zerotrust_aks_render_dir") or ""
    if not isinstance(render_dir, str) or render_dir != render_dir.strip():
        errors.append(f"zerotrust_aks_render_dir must be a folder path, or empty to apply; got {_show(render_dir)}.")

    facts = {fact.key: src.fact(fact) for fact in FACTS}
    namespaces = {
        "ingress": facts["ingress_namespace"],
        "gateway": facts["gateway_namespace"],
        "oauth2_proxy": facts["oauth2_proxy_namespace"],
        "colors_web": facts["colors_web_namespace"],
        "colors_api": facts["colors_api_namespace"],
    }
    ns_variables = {
        "ingress": "zerotrust_aks_ingress_namespace",
        "gateway": "zerotrust_aks_gateway_namespace",
        "oauth2_proxy": "zerotrust_aks_oauth2_proxy_namespace",
        "colors_web": "zerotrust_aks_colors_web_namespace",
        "colors_api": "zerotrust_aks_colors_api_namespace",
    }
    gateway_edge = inputs.get("zerotrust_aks_edge") == "gateway-api"
    # Only the chosen edge's namespace takes part: the other edge's input keeps its default and
    # means nothing. A Gateway controller the cluster already runs (gateway install false) lives
    # in a namespace the stack neither creates nor labels, so any namespace may hold it.
    gateway_owned = gateway_edge and inputs.get("zerotrust_aks_gateway_install", True) is True
    active = {key: ns for key, ns in namespaces.items() if key != ("ingress" if gateway_edge else "gateway")}
    for key, namespace in active.items():
        if key == "gateway" and not gateway_owned:
            continue
        if v.is_system_namespace(namespace):
            errors.append(
                f"{ns_variables[key]} is {_show(namespace)}, a system namespace: the stack enforces Pod Security "
                "'restricted' on its namespaces and teardown removes them. Choose a namespace of its own."
            )
    seen: dict[str, str] = {}
    for key, namespace in active.items():
        if namespace in seen:
            errors.append(
                f"{ns_variables[seen[namespace]]} and {ns_variables[key]} are both {_show(namespace)}; "
                "each component needs a namespace of its own (their NetworkPolicies admit by namespace)."
            )
        seen.setdefault(namespace, key)

    secret_names = dict(DEFAULT_SECRET_NAMES)
    if src.user_set("app_secrets_secret_names"):
        given = user["app_secrets_secret_names"]
        if not isinstance(given, t.Mapping) or sorted(given) != sorted(SECRET_ITEMS):
            errors.append(f"app_secrets_secret_names must map exactly {', '.join(SECRET_ITEMS)} to Secret names.")
        else:
            secret_names = {key: str(given[key]) for key in SECRET_ITEMS}
    for key, name in secret_names.items():
        if not v.is_k8s_subdomain(name):
            errors.append(
                f"app_secrets_secret_names.{key} must be a Secret name (RFC 1123 subdomain); got {_show(name)}."
            )
    provider_class = DEFAULT_SECRET_PROVIDER_CLASS
    if src.user_set("app_secrets_secret_provider_class_name"):
        provider_class = str(user["app_secrets_secret_provider_class_name"])
        if not v.is_k8s_subdomain(provider_class):
            errors.append(
                f"app_secrets_secret_provider_class_name must be an RFC 1123 subdomain; got {_show(provider_class)}."
            )
    # The session cookie's name is oauth2-proxy's setting, and the gateway edge's ForwardAuth must
    # pass its refreshed copies on to the browser by name: one home, the model.
    cookie_name = user.get("oauth2_proxy_cookie_name", DEFAULT_COOKIE_NAME)
    if not v.is_cookie_name(cookie_name):
        errors.append(
            f"oauth2_proxy_cookie_name must be a cookie name (letters, digits, _ . -); got {_show(cookie_name)}."
        )
    keyvault_objects = {
        "client_id": facts["keyvault_client_id"],
        "client_secret": facts["keyvault_client_secret"],
        "cookie_secret": facts["keyvault_cookie_secret"],
    }
    identity_mode = inputs.get("zerotrust_aks_identity_mode")
    identity_client_id = inputs.get("zerotrust_aks_identity_client_id") or ""
    tenant_id = inputs.get("zerotrust_aks_tenant_id") or ""
    keyvault_name = inputs.get("zerotrust_aks_keyvault_name") or ""
    controller = inputs.get("zerotrust_aks_ingress_controller")
    oauth2_ns = namespaces["oauth2_proxy"]
    oauth2_name = "oauth2-proxy"
    demo_apps = inputs.get("zerotrust_aks_demo_apps", True)
    if not isinstance(demo_apps, bool):
        errors.append(f"zerotrust_aks_demo_apps must be true or false; got {_show(demo_apps)}.")
        demo_apps = demo_apps in ("true", "True", "yes")
    owned = [namespaces["oauth2_proxy"]]
    if demo_apps:
        owned += [namespaces["colors_web"], namespaces["colors_api"]]
    if gateway_owned:
        owned.insert(0, namespaces["gateway"])
    elif controller == "ingress-nginx" and not gateway_edge:
        owned.insert(0, namespaces["ingress"])
    warnings: list[str] = []
    edge_model = edges.edge(
        errors,
        warnings,
        inputs,
        user,
        instance=str(instance),
        namespaces=namespaces,
        ingress_class=facts["ingress_class"],
    )

    authz = access.authorization(errors, inputs, platform)
    sessions = access.session(errors, inputs)
    client_auth = access.client_auth(errors, inputs, platform, identity_mode)
    if client_auth == "federated":
        secret_names = {key: name for key, name in secret_names.items() if key != "client_secret"}
    urls = {
        "host": host,
        "auth_url": f"http://{oauth2_name}.{oauth2_ns}.svc.cluster.local:{OAUTH2_PROXY_PORT}/oauth2/auth",
        "signin_url": edge_model["signin_url"],
    }
    # A user app may not live in a namespace the stack creates (or might create): teardown
    # deletes those namespaces with everything in them.
    reserved = {namespace: key.replace("_", "-") for key, namespace in active.items()}
    demo = protected.demo_entry(urls, namespaces["colors_web"], SERVICE_PORT) if demo_apps else None
    apps = protected.apps(errors, inputs, urls, demo, reserved)
    edges.check_apps(errors, edge_model, apps, inputs.get("zerotrust_aks_apps"))
    access.finish(errors, authz, apps, purpose)
    hosts = list(dict.fromkeys([str(host), *(app["host"] for app in apps)]))
    app_namespaces = list(dict.fromkeys(app["namespace"] for app in apps))
    tls = edges.tls(
        errors,
        inputs,
        instance=str(instance),
        edge_model=edge_model,
        secret_name=facts["tls_secret_name"],
        hosts=hosts,
        app_namespaces=app_namespaces,
        namespaces=active,
    )
    if tls["cert_manager"] and tls["cert_manager"]["install"]:
        owned.append(tls["cert_manager"]["namespace"])
    teardown_crds = inputs.get("zerotrust_aks_teardown_crds", False)
    if not isinstance(teardown_crds, bool):
        errors.append(f"zerotrust_aks_teardown_crds must be true or false; got {_show(teardown_crds)}.")
        teardown_crds = False
    if platform == "aks" and identity_mode == "addon":
        warnings.append(
            "zerotrust_aks_identity_mode is addon: the Key Vault secrets are readable by the AKS add-on's managed "
            "identity, which AKS attaches to the nodes, so any pod that reaches the instance metadata endpoint can "
            "read the client and cookie secrets (and forge sessions). Use workload (the default)."
        )
    if authz["allow_all_tenant_users"]:
        warnings.append(
            "zerotrust_aks_allow_all_tenant_users is true: every account the issuer signs in (on Entra every member "
            "and guest of the tenant) reaches the apps that have no allowed_groups of their own."
        )
    warnings += access.undeclared_roles(authz, apps, platform)
    labels = {"app.kubernetes.io/part-of": instance, "app.kubernetes.io/managed-by": MANAGED_BY}
    return {
        "errors": errors,
        "instance": instance,
        "platform": platform,
        "purpose": purpose,
        "warnings": warnings,
        "host": host,
        "hosts": hosts,
        "demo_apps": demo_apps,
        "authorization": authz,
        "session": sessions,
        "apps": apps,
        "render": bool(render_dir),
        "render_dir": render_dir,
        "ingress_controller": controller if not gateway_edge else "none",
        "edge": edge_model,
        "labels": labels,
        "namespaces": namespaces,
        "stack_namespaces": owned,
        "ingress": {"class": facts["ingress_class"], "namespace": namespaces["ingress"]},
        "oauth2_proxy": {
            "name": oauth2_name,
            "namespace": oauth2_ns,
            "service": oauth2_name,
            "service_account": oauth2_name,
            "port": OAUTH2_PROXY_PORT,
            "auth_url": urls["auth_url"],
            "signin_url": urls["signin_url"],
            "client_auth": client_auth,
            "cookie_name": str(cookie_name),
        },
        "colors_api": {
            "name": "colors-api",
            "namespace": namespaces["colors_api"],
            "service": "colors-api",
            "port": SERVICE_PORT,
            "url": f"http://colors-api.{namespaces['colors_api']}.svc.cluster.local/colors/random",
        },
        "colors_web": {
            "name": "colors-web",
            "namespace": namespaces["colors_web"],
            "service": "colors-web",
            "port": SERVICE_PORT,
        },
        "secrets": {
            "names": secret_names,
            "provider_class": provider_class,
            "keyvault_objects": keyvault_objects,
        },
        "tls": tls,
        "teardown_crds": teardown_crds,
        "identity": {
            "mode": identity_mode,
            "client_id": identity_client_id,
            "tenant_id": tenant_id,
            "keyvault_name": keyvault_name,
            "federated_subject": f"system:serviceaccount:{oauth2_ns}:{oauth2_name}",
        },
        "deployments": (
            [{"namespace": namespaces["gateway"], "name": edge_model["implementation"]}] if gateway_owned else []
        )
        + [{"namespace": oauth2_ns, "name": oauth2_name}]
        + (
            [
                {"namespace": namespaces["colors_api"], "name": "colors-api"},
                {"namespace": namespaces["colors_web"], "name": "colors-web"},
            ]
            if demo_apps
            else []
        ),
    }
