# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): the apps behind the login — the demo
entry and ``zerotrust_aks_apps`` — as the stack model (plugin_utils/_stack.py) lists them, each
checked field by field, with its defaults filled in and its auth-url. The protected_apps role
renders one Ingress per entry."""

from __future__ import annotations

import typing as t
from urllib.parse import quote

from ansible_collections.zerotrust.aks.plugins.module_utils import _validation as v
from ansible_collections.zerotrust.aks.plugins.plugin_utils._stack_access import GROUP_ALLOWED, show, string_list

# Identity headers an app may ask for -> the header nginx copies from oauth2-proxy's
# /oauth2/auth answer (--set-xauthrequest). The last two carry the user's tokens: opt-in only
# (oauth2-proxy passes tokens only when some app asks).
HEADERS: dict[str, str] = {
    "user": "X-Auth-Request-User",
    "email": "X-Auth-Request-Email",
    "groups": "X-Auth-Request-Groups",
    "preferred_username": "X-Auth-Request-Preferred-Username",
    "access_token": "X-Auth-Request-Access-Token",
    "authorization": "Authorization",
}
DEFAULT_HEADERS = ("user", "email", "groups")
APP_FIELDS = ("name", "namespace", "service", "port", "host", "path", "allowed_groups", "headers", "annotations")
ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
COLORS_WEB_AFFINITY_COOKIE = "colors-web-affinity"


def _app(
    errors: list[str], index: int, raw: t.Any, stack: t.Mapping[str, t.Any], reserved: t.Mapping[str, str]
) -> dict[str, t.Any] | None:
    where = f"zerotrust_aks_apps[{index}]"
    if not isinstance(raw, t.Mapping):
        errors.append(f"{where} must be a mapping with at least name and namespace; got {show(raw)}.")
        return None
    before = len(errors)
    name = raw.get("name")
    if not v.is_k8s_name(name):
        errors.append(f"{where}.name must be a Kubernetes name (RFC 1123 label, such as shop); got {show(name)}.")
    else:
        where = f"zerotrust_aks_apps[{index}] ({name})"
    unknown = sorted(str(key) for key in set(raw) - set(APP_FIELDS))
    if unknown:
        errors.append(f"{where} has unknown fields {', '.join(unknown)}; allowed: {', '.join(APP_FIELDS)}.")
    namespace = raw.get("namespace")
    if not v.is_k8s_name(namespace):
        errors.append(
            f"{where}.namespace must be the name of an existing namespace (RFC 1123 label); got {show(namespace)}."
        )
    elif v.is_system_namespace(namespace):
        errors.append(
            f"{where}.namespace is {show(namespace)}, a system namespace: put the app in a namespace of its own."
        )
    elif isinstance(namespace, str) and namespace in reserved:
        errors.append(
            f"{where}.namespace is {show(namespace)}, the namespace of the stack's {reserved[namespace]} "
            "(teardown removes it): put the app in a namespace of its own."
        )
    service = raw.get("service", name)
    if not v.is_k8s_name(service):
        errors.append(f"{where}.service must be a Service name (RFC 1123 label); got {show(service)}.")
    port = raw.get("port", 80)
    # The argument spec takes "8080" for an int (an -e value is a string); so does the model.
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not v.is_port(port):
        errors.append(f"{where}.port must be the Service port number (1-65535); got {show(port)}.")
    host = raw.get("host") or stack["host"]
    if not v.is_dns_name(host):
        errors.append(f"{where}.host must be a lower-case DNS name such as shop.example.com; got {show(host)}.")
    path = raw.get("path", "/")
    if not v.is_http_path(path):
        errors.append(
            f"{where}.path must be an absolute URL path such as / or /shop (no blanks or regex); got {show(path)}."
        )
    groups = string_list(
        errors, f"{where}.allowed_groups", raw.get("allowed_groups", []), v.is_group_value, GROUP_ALLOWED
    )
    headers = string_list(
        errors,
        f"{where}.headers",
        raw.get("headers", list(DEFAULT_HEADERS)),
        HEADERS.__contains__,
        f"one of {', '.join(HEADERS)}",
    )
    annotations = raw.get("annotations", {})
    if not isinstance(annotations, t.Mapping):
        errors.append(
            f"{where}.annotations must be a mapping of {ANNOTATION_PREFIX}* names to strings; got {show(annotations)}."
        )
        annotations = {}
    for key, value in annotations.items():
        suffix = key[len(ANNOTATION_PREFIX) :] if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX) else None
        if suffix is None or not suffix:
            errors.append(
                f"{where}.annotations: {show(key)} is not an ingress-nginx annotation ({ANNOTATION_PREFIX}*)."
            )
        elif suffix.startswith("auth-") or "snippet" in suffix:
            errors.append(
                f"{where}.annotations: {key} is refused: the auth-* annotations are the login itself and "
                "snippets can bypass it. Use allowed_groups and headers to shape the login."
            )
        elif not isinstance(value, str):
            errors.append(f"{where}.annotations.{key} must be a string (quote it in YAML); got {show(value)}.")
    if len(errors) > before:
        return None
    url = stack["auth_url"] + ("?allowed_groups=" + quote(",".join(groups), safe=",") if groups else "")
    return {
        "name": name,
        "namespace": namespace,
        "service": service,
        "port": port,
        "host": host,
        "path": path,
        "allowed_groups": groups,
        "headers": headers,
        "response_headers": [HEADERS[key] for key in headers],
        "annotations": dict(annotations),
        "auth_url": url,
        "signin_url": stack["signin_url"],
        "demo": False,
    }


def apps(
    errors: list[str],
    inputs: t.Mapping[str, t.Any],
    stack: t.Mapping[str, t.Any],
    demo_entry: dict[str, t.Any] | None,
    reserved: t.Mapping[str, str],
) -> list[dict[str, t.Any]]:
    """The protected apps, the demo entry first. ``stack``: host, auth_url and signin_url."""
    raw = inputs.get("zerotrust_aks_apps", [])
    if not isinstance(raw, list):
        errors.append(f"zerotrust_aks_apps must be a list of apps ({{name, namespace, ...}}); got {show(raw)}.")
        raw = []
    result = [demo_entry] if demo_entry else []
    for index, item in enumerate(raw):
        app = _app(errors, index, item, stack, reserved)
        if app is None:
            continue
        for other in result:
            if (other["namespace"], other["name"]) == (app["namespace"], app["name"]):
                errors.append(f"zerotrust_aks_apps[{index}] repeats the Ingress {app['namespace']}/{app['name']}.")
                break
            if (other["host"], other["path"]) == (app["host"], app["path"]):
                errors.append(
                    f"zerotrust_aks_apps[{index}] ({app['name']}) serves {app['host']}{app['path']}, "
                    f"which {other['name']} already serves; give it another host or path."
                )
                break
        else:
            result.append(app)
    return result


def demo_entry(stack: t.Mapping[str, t.Any], namespace: str, port: int) -> dict[str, t.Any]:
    """The colors web app as the first protected app. Its cookie affinity keeps a user's
    requests on one replica (ColorsWeb keeps state in memory)."""
    return {
        "name": "colors-web",
        "namespace": namespace,
        "service": "colors-web",
        "port": port,
        "host": stack["host"],
        "path": "/",
        "allowed_groups": [],
        "headers": list(DEFAULT_HEADERS),
        "response_headers": [HEADERS[key] for key in DEFAULT_HEADERS],
        "annotations": {
            "nginx.ingress.kubernetes.io/affinity": "cookie",
            "nginx.ingress.kubernetes.io/session-cookie-name": COLORS_WEB_AFFINITY_COOKIE,
            "nginx.ingress.kubernetes.io/session-cookie-secure": "true",
        },
        "auth_url": stack["auth_url"],
        "signin_url": stack["signin_url"],
        "demo": True,
    }
