"""Auth-flow harness: real oauth2-proxy, real IdP and Debian nginx configured from Kubernetes objects.

Layer 5 of the test pyramid (docs/DEVELOPING.md). The inputs are the objects the cluster layer
applies — the oauth2-proxy Deployment with the Secrets its env references, and the Ingresses —
either read back from an API server (:func:`objects_from_cluster`) or taken from a render folder
(:func:`objects_from_render`). From them this module derives, with pure functions:

- the oauth2-proxy command line and environment (:func:`oauth2_proxy_invocation`): the container's
  args and env exactly, with two documented overrides (listen address, issuer URL);
- an nginx configuration that does what ingress-nginx does for the Ingress annotations the roles
  use (:func:`nginx_config`), modelled on ingress-nginx's ``nginx.tmpl`` and ``template.go``.

and it runs the programs (:class:`ManagedProcess`, bounded lifetime, stopped by PID), a stand-in
upstream (:class:`EchoUpstream`) and a :class:`ScriptedBrowser`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import html.parser
import http.cookiejar
import ipaddress
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import typing as t
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import urllib3
import yaml
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.util import connection as urllib3_connection

ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
CLUSTER_DOMAIN = "cluster.local"

# Annotations the generator turns into nginx directives, as ingress-nginx does.
SUPPORTED_ANNOTATIONS = frozenset(
    {"auth-url", "auth-signin", "auth-response-headers", "proxy-buffer-size"},
)
# Annotations the roles set that have no bearing on the login flow; each with the reason it may
# be left out. Any other nginx.ingress.kubernetes.io/* annotation makes nginx_config() fail, so a
# new annotation in a role cannot silently go untested.
IGNORED_ANNOTATIONS: Mapping[str, str] = {
    "affinity": "sticky sessions pick one of several endpoints; the harness runs one upstream",
    "session-cookie-name": "belongs to affinity (see there)",
    "session-cookie-secure": "belongs to affinity (see there)",
}
# ConfigMap keys of the ingress-nginx controller the generator honours (http level), and keys
# that need nothing from it.
SUPPORTED_CONTROLLER_KEYS = frozenset({"proxy-buffer-size", "large-client-header-buffers"})
IGNORED_CONTROLLER_KEYS: Mapping[str, str] = {
    "allow-snippet-annotations": "the generator supports no snippet annotation at all",
}
# ingress-nginx defaults (internal/ingress/defaults) that matter here.
DEFAULT_PROXY_BUFFER_SIZE = "4k"
DEFAULT_LARGE_CLIENT_HEADER_BUFFERS = "4 8k"


class UnsupportedObject(ValueError):
    """An object uses something the harness cannot reproduce faithfully (so it refuses)."""


# --------------------------------------------------------------------------------------------
# The applied objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedObjects:
    """What the login flow is built from, as the cluster holds it.

    ``secrets`` maps Secret name to the Secret object (``data`` base64, as the API returns it) in
    the Deployment's namespace; ``tls_secrets`` maps ``secretName`` of an Ingress TLS entry
    (namespace/name) to a ``kubernetes.io/tls`` Secret, or is empty when the harness should make
    its own certificate; ``controller_config`` is the ingress-nginx controller ConfigMap's data.
    """

    deployment: Mapping[str, t.Any]
    secrets: Mapping[str, Mapping[str, t.Any]]
    ingresses: Sequence[Mapping[str, t.Any]]
    controller_config: Mapping[str, str] = field(default_factory=dict)
    tls_secrets: Mapping[str, Mapping[str, t.Any]] = field(default_factory=dict)

    @property
    def host(self) -> str:
        """The one host the Ingresses serve (the site)."""
        hosts: list[str] = sorted({rule["host"] for ing in self.ingresses for rule in ing["spec"].get("rules", [])})
        if len(hosts) != 1:
            raise UnsupportedObject(f"expected the Ingresses to serve exactly one host, got {hosts}")
        return hosts[0]


def secret_value(secrets: Mapping[str, Mapping[str, t.Any]], name: str, key: str) -> str:
    """The decoded value of ``key`` in Secret ``name`` (``data`` is base64, ``stringData`` plain)."""
    try:
        secret = secrets[name]
    except KeyError:
        raise UnsupportedObject(f"Secret {name!r} is referenced but not given (have {sorted(secrets)})") from None
    if key in (secret.get("data") or {}):
        return base64.b64decode(str(secret["data"][key])).decode()
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    raise UnsupportedObject(f"Secret {name!r} has no key {key!r}")


def make_secret(namespace: str, name: str, data: Mapping[str, str]) -> dict[str, t.Any]:
    """A Secret object shaped as the API server returns it (values base64 in ``data``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def objects_from_render(
    render_dir: Path,
    secrets: Mapping[str, Mapping[str, t.Any]],
    *,
    deployment_name: str = "oauth2-proxy",
    deployment_namespace: str = "oauth2-proxy",
    controller_configmap: tuple[str, str] = ("ingress-nginx", "ingress-nginx-controller"),
) -> AppliedObjects:
    """The objects of a render folder (one object per ``*.yaml``), plus Secrets made by the caller.

    Render mode writes no Secret (no values leave Ansible), so the caller supplies them.
    """
    objects: list[Mapping[str, t.Any]] = []
    for path in sorted(render_dir.glob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return _select(objects, secrets, deployment_name, deployment_namespace, controller_configmap)


def objects_from_cluster(
    kubeconfig: Path | str,
    *,
    context: str | None = None,
    deployment_name: str = "oauth2-proxy",
    deployment_namespace: str = "oauth2-proxy",
    controller_configmap: tuple[str, str] = ("ingress-nginx", "ingress-nginx-controller"),
    ingress_class: str = "nginx",
) -> AppliedObjects:
    """The objects as applied on the API server of ``kubeconfig`` (what the lead's fixture uses).

    Reads the Deployment, every Secret its env references, every Ingress of ``ingress_class``
    in any namespace, their TLS Secrets and the controller ConfigMap (empty when absent).
    """
    from kubernetes import client, config  # the venv has it; imported here so unit tests need no cluster

    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context=context
    )
    with api_client:
        sanitize = api_client.sanitize_for_serialization
        apps = client.AppsV1Api(api_client)
        core = client.CoreV1Api(api_client)
        networking = client.NetworkingV1Api(api_client)
        deployment = sanitize(apps.read_namespaced_deployment(deployment_name, deployment_namespace))
        secrets = {
            name: sanitize(core.read_namespaced_secret(name, deployment_namespace))
            for name in referenced_secret_names(deployment)
        }
        ingresses = [
            sanitize(ing)
            for ing in networking.list_ingress_for_all_namespaces().items
            if ing.spec is not None and ing.spec.ingress_class_name == ingress_class
        ]
        tls_secrets: dict[str, Mapping[str, t.Any]] = {}
        for ing in ingresses:
            namespace = ing["metadata"]["namespace"]
            for tls in ing["spec"].get("tls") or []:
                key = f"{namespace}/{tls['secretName']}"
                if key not in tls_secrets:
                    tls_secrets[key] = sanitize(core.read_namespaced_secret(tls["secretName"], namespace))
        try:
            cm = core.read_namespaced_config_map(controller_configmap[1], controller_configmap[0])
            controller_config = dict(cm.data or {})
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            controller_config = {}
    return AppliedObjects(deployment, secrets, ingresses, controller_config, tls_secrets)


def _select(
    objects: Iterable[Mapping[str, t.Any]],
    secrets: Mapping[str, Mapping[str, t.Any]],
    deployment_name: str,
    deployment_namespace: str,
    controller_configmap: tuple[str, str],
) -> AppliedObjects:
    deployment = None
    ingresses = []
    controller_config: dict[str, str] = {}
    for obj in objects:
        meta = obj.get("metadata", {})
        ident = (obj.get("kind"), meta.get("namespace"), meta.get("name"))
        if ident == ("Deployment", deployment_namespace, deployment_name):
            deployment = obj
        elif obj.get("kind") == "Ingress":
            ingresses.append(obj)
        elif ident == ("ConfigMap", *controller_configmap):
            controller_config = dict(obj.get("data") or {})
    if deployment is None:
        raise UnsupportedObject(f"no Deployment {deployment_namespace}/{deployment_name} among the objects")
    return AppliedObjects(deployment, dict(secrets), ingresses, controller_config)


# --------------------------------------------------------------------------------------------
# oauth2-proxy: command line and environment from the Deployment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """One change to what the Deployment says, and why the harness has to make it."""

    flag: str
    deployed: str | None
    used: str
    reason: str


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]
    overrides: list[Override]


def _container(deployment: Mapping[str, t.Any], name: str) -> Mapping[str, t.Any]:
    containers: list[Mapping[str, t.Any]] = deployment["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if container["name"] == name:
            return container
    raise UnsupportedObject(f"Deployment has no container {name!r} (has {[c['name'] for c in containers]})")


def referenced_secret_names(deployment: Mapping[str, t.Any], container: str = "oauth2-proxy") -> list[str]:
    """Names of the Secrets the container's env reads (``secretKeyRef``), in order."""
    names: list[str] = []
    for entry in _container(deployment, container).get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] not in names:
            names.append(ref["name"])
    return names


def oauth2_proxy_invocation(
    deployment: Mapping[str, t.Any],
    secrets: Mapping[str, Mapping[str, t.Any]],
    *,
    binary: str,
    http_address: str,
    issuer_url: str,
    container: str = "oauth2-proxy",
) -> Invocation:
    """argv and env of the container as the Deployment runs it, with the two overrides applied.

    The image's entrypoint is the oauth2-proxy binary, so argv is ``[binary, *args]``; a
    ``command`` in the container would change that and is refused. Env values come from
    ``value`` or from ``secretKeyRef`` resolved in ``secrets``; other sources are refused.
    """
    spec = _container(deployment, container)
    if spec.get("command"):
        raise UnsupportedObject(
            f"container {container!r} sets command {spec['command']}; expected the image entrypoint"
        )
    args = list(spec.get("args") or [])
    replacements = {
        "--http-address": (http_address, "listen on a free port of 127.0.0.1 instead of the pod's 0.0.0.0:4180"),
        "--oidc-issuer-url": (issuer_url, "the local IdP instead of the deployed issuer"),
    }
    overrides: list[Override] = []
    for flag, (value, reason) in replacements.items():
        positions = [i for i, arg in enumerate(args) if arg == flag or arg.startswith(flag + "=")]
        if len(positions) != 1 or args[positions[0]] == flag:
            # Only the --flag=value form is rewritten; anything else would be guesswork.
            raise UnsupportedObject(f"expected exactly one {flag}=VALUE in the container args, got {args}")
        deployed = args[positions[0]].split("=", 1)[1]
        args[positions[0]] = f"{flag}={value}"
        overrides.append(Override(flag, deployed, value, reason))
    env: dict[str, str] = {}
    for entry in spec.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            raise UnsupportedObject(f"env {entry['name']} uses {entry.get('valueFrom')}; only value and secretKeyRef")
        env[entry["name"]] = secret_value(secrets, ref["name"], ref["key"])
    if spec.get("envFrom"):
        raise UnsupportedObject("envFrom is not supported by the harness")
    return Invocation([binary, *args], env, overrides)


def deployed_flag(deployment: Mapping[str, t.Any], flag: str, container: str = "oauth2-proxy") -> list[str]:
    """Every value of ``--flag=value`` in the container's args (the Deployment as applied)."""
    return [
        arg.split("=", 1)[1]
        for arg in _container(deployment, container).get("args") or []
        if arg.startswith(flag + "=")
    ]


# --------------------------------------------------------------------------------------------
# nginx: configuration from the Ingresses, the way ingress-nginx builds it
# --------------------------------------------------------------------------------------------


def service_key(host: str, port: int, namespace: str | None = None) -> str:
    """Canonical ``svc.ns.svc.cluster.local:port`` for a Service host in any of its DNS forms."""
    labels = host.rstrip(".").split(".")
    if len(labels) == 1:
        if namespace is None:
            raise UnsupportedObject(f"service host {host!r} needs a namespace")
        labels.append(namespace)
    if len(labels) == 2:
        labels += ["svc", *CLUSTER_DOMAIN.split(".")]
    elif len(labels) == 3 and labels[2] == "svc":
        labels += CLUSTER_DOMAIN.split(".")
    name = ".".join(labels)
    if not name.endswith(f".svc.{CLUSTER_DOMAIN}") or len(labels) != 5:
        raise UnsupportedObject(f"{host!r} is not the DNS name of a Service (svc.ns.svc.{CLUSTER_DOMAIN})")
    return f"{name}:{port}"


def backend_key(ingress: Mapping[str, t.Any], backend: Mapping[str, t.Any]) -> str:
    service = backend.get("service")
    if not service or "number" not in service.get("port", {}):
        raise UnsupportedObject(f"only service backends with a port number are supported, got {backend}")
    return service_key(service["name"], int(service["port"]["number"]), ingress["metadata"]["namespace"])


def auth_location_name(path: str, path_type: str) -> str:
    """ingress-nginx's buildAuthLocation: ``/_external-auth-<base64url(path) without =>-<pathType>``."""
    encoded = base64.urlsafe_b64encode(path.encode()).decode().replace("=", "")
    return f"/_external-auth-{encoded}-{path_type}"


def signin_location_name(path: str, signin_url: str) -> str:
    """ingress-nginx's buildAuthSignURLLocation: ``@`` + sha1(location path + signin URL)."""
    return "@" + hashlib.sha1((path + signin_url).encode(), usedforsecurity=False).hexdigest()


def auth_signin_redirect(signin_url: str, redirect_param: str = "rd") -> str:
    """ingress-nginx's buildAuthSignURL: keep an explicit ``rd``, else append the original URL."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(signin_url).query)
    if not query:
        return f"{signin_url}?{redirect_param}=$pass_access_scheme://$http_host$escaped_request_uri"
    if query.get(redirect_param, [""])[0]:
        return signin_url
    return f"{signin_url}&{redirect_param}=$pass_access_scheme://$http_host$escaped_request_uri"


def auth_response_header_lines(headers: Sequence[str]) -> list[str]:
    """ingress-nginx's buildAuthResponseHeaders (auth_request_set + proxy_set_header per header)."""
    lines = []
    for i, header in enumerate(headers):
        variable = header.lower().replace("-", "_")
        lines.append(f"auth_request_set $authHeader{i} $upstream_http_{variable};")
        lines.append(f"proxy_set_header '{header}' $authHeader{i};")
    return lines


_SIZE = re.compile(r"^\d+[kKmM]?$")
_NGINX_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# Variables ingress-nginx lets auth-url / auth-signin use; all exist in the generated config.
_ALLOWED_URL_VARIABLES = frozenset(
    {
        "scheme", "host", "hostname", "request_uri", "request_method", "query_string", "args", "remote_addr",
        "uri", "document_uri", "server_name", "server_port", "content_type", "content_length", "is_args",
        "best_http_host", "escaped_request_uri", "proxy_add_x_forwarded_for", "pass_access_scheme", "http_host",
    }
)  # fmt: skip


def _check_url_variables(annotation: str, value: str) -> None:
    for name in _NGINX_VARIABLE.findall(value):
        if name not in _ALLOWED_URL_VARIABLES and not name.startswith(("http_", "arg_", "cookie_")):
            raise UnsupportedObject(f"{annotation} uses ${name}, which ingress-nginx does not allow")


def _size(annotation: str, value: str) -> str:
    if not _SIZE.match(value):
        raise UnsupportedObject(f"{annotation}: {value!r} is not an nginx size")
    return value


@dataclass(frozen=True)
class Location:
    """One nginx location of one Ingress path (after ingress-nginx's Prefix normalisation)."""

    path: str
    path_type: str  # Prefix or Exact (as ingress-nginx renders them)
    ingress: str  # namespace/name, for the comments and for $ingress_name
    upstream: str  # local address of the backend Service
    auth_url: str | None = None  # with the Service host mapped to its local address
    auth_host: str | None = None  # Host header of the auth subrequest (the Service's DNS name)
    signin_url: str | None = None
    response_headers: tuple[str, ...] = ()
    proxy_buffer_size: str = DEFAULT_PROXY_BUFFER_SIZE

    @property
    def nginx_path(self) -> str:
        return f"= {self.path}" if self.path_type == "Exact" else self.path


@dataclass(frozen=True)
class Server:
    host: str
    certificate: Path
    key: Path
    locations: tuple[Location, ...]


def ingress_locations(
    ingress: Mapping[str, t.Any],
    addresses: Mapping[str, str],
    controller_config: Mapping[str, str] | None = None,
) -> dict[str, list[Location]]:
    """Locations per host for one Ingress, with Services mapped through ``addresses``.

    ``addresses`` maps ``service_key()`` of a Service to the local ``127.0.0.1:port`` standing in
    for it; the auth-url keeps its scheme, path and Host header — only the address changes.
    """
    controller_config = controller_config or {}
    meta = ingress["metadata"]
    name = f"{meta['namespace']}/{meta['name']}"
    annotations = {
        k.removeprefix(ANNOTATION_PREFIX): v
        for k, v in (meta.get("annotations") or {}).items()
        if k.startswith(ANNOTATION_PREFIX)
    }
    unknown = sorted(set(annotations) - SUPPORTED_ANNOTATIONS - set(IGNORED_ANNOTATIONS))
    if unknown:
        raise UnsupportedObject(f"Ingress {name}: the harness does not reproduce annotations {unknown}")

    auth_url = auth_host = signin = None
    if "auth-url" in annotations:
        _check_url_variables("auth-url", annotations["auth-url"])
        parsed = urllib.parse.urlsplit(annotations["auth-url"])
        if parsed.scheme != "http" or not parsed.hostname:
            raise UnsupportedObject(f"Ingress {name}: auth-url must be an http:// Service URL, got {parsed.geturl()}")
        key = service_key(parsed.hostname, parsed.port or 80)
        if key not in addresses:
            raise UnsupportedObject(f"Ingress {name}: no local address for auth-url Service {key}")
        auth_url = parsed._replace(netloc=addresses[key]).geturl()
        auth_host = parsed.hostname
    headers: tuple[str, ...] = ()
    # ingress-nginx parses the auth-* annotations only together with auth-url: without it,
    # auth-signin and auth-response-headers do nothing.
    if auth_url and "auth-signin" in annotations:
        _check_url_variables("auth-signin", annotations["auth-signin"])
        signin = annotations["auth-signin"]
    if auth_url:
        headers = tuple(h.strip() for h in annotations.get("auth-response-headers", "").split(",") if h.strip())
    for header in headers:
        if not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise UnsupportedObject(f"Ingress {name}: invalid auth-response-headers entry {header!r}")
    buffer_size = _size(
        "proxy-buffer-size",
        annotations.get("proxy-buffer-size", controller_config.get("proxy-buffer-size", DEFAULT_PROXY_BUFFER_SIZE)),
    )

    result: dict[str, list[Location]] = {}
    for rule in ingress["spec"].get("rules") or []:
        if not rule.get("host"):
            raise UnsupportedObject(f"Ingress {name}: rules without host are not supported")
        for p in rule["http"]["paths"]:
            key = backend_key(ingress, p["backend"])
            if key not in addresses:
                raise UnsupportedObject(f"Ingress {name}: no local address for backend Service {key}")
            path, path_type = p.get("path", "/"), p.get("pathType", "Prefix")
            location = Location(
                path,
                path_type,
                ingress=name,
                upstream=addresses[key],
                auth_url=auth_url,
                auth_host=auth_host,
                signin_url=signin,
                response_headers=headers,
                proxy_buffer_size=buffer_size,
            )
            locations = []
            if path_type == "Exact":
                locations.append(location)
            elif path_type == "Prefix":
                # ingress-nginx (updateServerLocations): a Prefix path not ending in "/" becomes a
                # prefix location "path/" plus an exact location "path", so /oauth2x never matches.
                if path == "/" or path.endswith("/"):
                    locations.append(location)
                else:
                    locations.append(dataclasses.replace(location, path=path + "/"))
                    locations.append(dataclasses.replace(location, path_type="Exact"))
            else:
                raise UnsupportedObject(f"Ingress {name}: pathType {path_type} is not supported")
            result.setdefault(rule["host"], []).extend(locations)
    return result


def servers_from_ingresses(
    ingresses: Iterable[Mapping[str, t.Any]],
    addresses: Mapping[str, str],
    certificates: Mapping[str, tuple[Path, Path]],
    controller_config: Mapping[str, str] | None = None,
    ingress_class: str = "nginx",
) -> list[Server]:
    """One server per host, merging the locations of every Ingress of the class (as ingress-nginx).

    ``certificates`` maps ``namespace/secretName`` of a TLS entry to (certificate, key) files;
    every host must be covered by a TLS entry (the site is HTTPS only).
    """
    locations: dict[str, list[Location]] = {}
    tls: dict[str, tuple[Path, Path]] = {}
    for ingress in ingresses:
        if ingress["spec"].get("ingressClassName") != ingress_class:
            continue
        for host, locs in ingress_locations(ingress, addresses, controller_config).items():
            for loc in locs:
                clash = [o for o in locations.get(host, []) if (o.path, o.path_type) == (loc.path, loc.path_type)]
                if clash:
                    raise UnsupportedObject(f"{host}{loc.path} is routed by both {clash[0].ingress} and {loc.ingress}")
            locations.setdefault(host, []).extend(locs)
        for entry in ingress["spec"].get("tls") or []:
            key = f"{ingress['metadata']['namespace']}/{entry['secretName']}"
            if key not in certificates:
                raise UnsupportedObject(f"no certificate files for TLS Secret {key}")
            for host in entry.get("hosts") or []:
                tls.setdefault(host, certificates[key])
    servers = []
    for host in sorted(locations):
        if host not in tls:
            raise UnsupportedObject(f"host {host} has no TLS entry; the harness serves HTTPS only")
        # ingress-nginx sorts locations by path, longest first; nginx itself picks the longest
        # prefix anyway, but a stable order keeps the generated file diffable.
        ordered = sorted(locations[host], key=lambda loc: (-len(loc.path), loc.path, loc.path_type))
        servers.append(Server(host, tls[host][0], tls[host][1], tuple(ordered)))
    return servers


def _location_block(loc: Location, listen_port: int) -> list[str]:
    lines: list[str] = []
    auth_path = auth_location_name(loc.path, loc.path_type) if loc.auth_url else None
    if auth_path:
        # nginx.tmpl: the internal location of the auth subrequest.
        lines += [
            f"location = {auth_path} {{",
            "    internal;",
            "    proxy_pass_request_body     off;",
            '    proxy_set_header            Content-Length          "";',
            '    proxy_set_header            X-Forwarded-Proto       "";',
            "    proxy_set_header            X-Request-ID            $req_id;",
            f"    proxy_set_header            Host                    {loc.auth_host};",
            "    proxy_set_header            X-Original-URL          $scheme://$http_host$request_uri;",
            "    proxy_set_header            X-Original-Method       $request_method;",
            '    proxy_set_header            X-Sent-From             "nginx-ingress-controller";',
            "    proxy_set_header            X-Real-IP               $remote_addr;",
            "    proxy_set_header            X-Forwarded-For         $remote_addr;",
            "    proxy_set_header            X-Auth-Request-Redirect $request_uri;",
            "    proxy_buffering             off;",
            f"    proxy_buffer_size           {loc.proxy_buffer_size};",
            f"    proxy_buffers               4 {loc.proxy_buffer_size};",
            "    proxy_request_buffering     on;",
            "    proxy_http_version          1.1;",
            "    proxy_ssl_server_name       on;",
            "    proxy_pass_request_headers  on;",
            "    client_max_body_size        1m;",
            f"    set $target {loc.auth_url};",
            "    proxy_pass $target;",
            "}",
        ]
    signin_location = signin_location_name(loc.path, loc.signin_url) if loc.signin_url else None
    if signin_location and loc.signin_url:
        lines += [
            f"location {signin_location} {{",
            "    internal;",
            "    add_header Set-Cookie $auth_cookie;",
            f"    return 302 {auth_signin_redirect(loc.signin_url)};",
            "}",
        ]
    lines += [
        f"location {loc.nginx_path} {{",
        f'    set $ingress_name "{loc.ingress}";',
        "    port_in_redirect off;",
        "    set $pass_access_scheme  $scheme;",
        "    set $pass_server_port    $server_port;",
        "    set $best_http_host      $http_host;",
        # The controller listens on 443, so it sends X-Forwarded-Port 443, not our random port.
        f"    set $pass_port           {'$pass_server_port' if listen_port == 443 else '443'};",
    ]
    if auth_path:
        lines += [
            "    # this location requires authentication",
            f"    auth_request        {auth_path};",
            "    auth_request_set    $auth_cookie $upstream_http_set_cookie;",
            "    add_header          Set-Cookie $auth_cookie;",
        ]
        lines += [f"    {line}" for line in auth_response_header_lines(loc.response_headers)]
    if signin_location:
        lines += [
            # set-misc's set_escape_uri: how ingress-nginx defines $escaped_request_uri.
            "    set_escape_uri $escaped_request_uri $request_uri;",
            f"    error_page 401 = {signin_location};",
        ]
    lines += [
        "    client_max_body_size                    1m;",
        "    proxy_set_header Host                   $best_http_host;",
        "    proxy_set_header Upgrade                $http_upgrade;",
        "    proxy_set_header Connection             $connection_upgrade;",
        "    proxy_set_header X-Request-ID           $req_id;",
        "    proxy_set_header X-Real-IP              $remote_addr;",
        "    proxy_set_header X-Forwarded-For        $remote_addr;",
        "    proxy_set_header X-Forwarded-Host       $best_http_host;",
        "    proxy_set_header X-Forwarded-Port       $pass_port;",
        "    proxy_set_header X-Forwarded-Proto      $pass_access_scheme;",
        "    proxy_set_header X-Forwarded-Scheme     $pass_access_scheme;",
        "    proxy_set_header X-Scheme               $pass_access_scheme;",
        "    proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for;",
        '    proxy_set_header Proxy                  "";',
        "    proxy_connect_timeout                   5s;",
        "    proxy_send_timeout                      60s;",
        "    proxy_read_timeout                      60s;",
        "    proxy_buffering                         off;",
        f"    proxy_buffer_size                       {loc.proxy_buffer_size};",
        f"    proxy_buffers                           4 {loc.proxy_buffer_size};",
        "    proxy_max_temp_file_size                1024m;",
        "    proxy_request_buffering                 on;",
        "    proxy_http_version                      1.1;",
        "    proxy_cookie_domain                     off;",
        "    proxy_cookie_path                       off;",
        "    proxy_next_upstream                     error timeout;",
        "    proxy_redirect                          off;",
        f"    proxy_pass http://{loc.upstream};",
        "}",
    ]
    return lines


def nginx_config(
    servers: Sequence[Server],
    *,
    listen: str,
    state_dir: Path,
    default_certificate: tuple[Path, Path],
    controller_config: Mapping[str, str] | None = None,
    modules_dir: Path = Path("/usr/lib/nginx/modules"),
    run_as_root: bool = False,
) -> str:
    """The nginx.conf for ``servers``: everything under ``state_dir``, listening on ``listen`` only.

    ``listen`` must be ``127.0.0.1:PORT``. Requests for a host no Ingress serves reach the
    default server and get 404, like ingress-nginx's default backend.
    """
    host, _sep, port_text = listen.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"nginx must listen on a loopback address, got {listen}")
    port = int(port_text)
    controller_config = dict(controller_config or {})
    unknown = sorted(set(controller_config) - SUPPORTED_CONTROLLER_KEYS - set(IGNORED_CONTROLLER_KEYS))
    if unknown:
        raise UnsupportedObject(f"the harness does not reproduce controller ConfigMap keys {unknown}")
    header_buffers = controller_config.get("large-client-header-buffers", DEFAULT_LARGE_CLIENT_HEADER_BUFFERS)
    number, _sep, size = header_buffers.partition(" ")
    if not number.isdigit():
        raise UnsupportedObject(f"large-client-header-buffers: {header_buffers!r} is not 'NUMBER SIZE'")
    _size("large-client-header-buffers", size)
    s = str(state_dir)
    lines = [
        "# Generated by tests/authflow/harness.py from Ingress objects, after ingress-nginx's nginx.tmpl.",
        f"load_module {modules_dir}/ndk_http_module.so;",
        f"load_module {modules_dir}/ngx_http_set_misc_module.so;",
        f"pid {s}/nginx.pid;",
        f"error_log {s}/error.log info;",
        "worker_processes 1;",
    ]
    if run_as_root:
        # A root master switches its workers to "nobody", who cannot read pytest's 0700 tmp dirs.
        lines.append("user root;")
    lines += [
        "events { worker_connections 256; }",
        "http {",
        f"    access_log {s}/access.log;",
        f"    client_body_temp_path {s}/client-body;",
        f"    proxy_temp_path {s}/proxy-temp;",
        f"    fastcgi_temp_path {s}/fastcgi-temp;",
        f"    uwsgi_temp_path {s}/uwsgi-temp;",
        f"    scgi_temp_path {s}/scgi-temp;",
        "    default_type text/html;",
        "    server_tokens off;",
        "    server_name_in_redirect off;",
        "    port_in_redirect off;",
        "    uninitialized_variable_warn off;",
        "    client_header_buffer_size 1k;",
        f"    large_client_header_buffers {header_buffers};",
        "    map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        '    map $http_x_request_id $req_id { default $http_x_request_id; "" $request_id; }',
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    # ingress-nginx's default backend: hosts no Ingress serves get 404.",
        "    server {",
        f"        listen {listen} ssl default_server;",
        f"        ssl_certificate {default_certificate[0]};",
        f"        ssl_certificate_key {default_certificate[1]};",
        "        location / { return 404; }",
        "    }",
    ]
    for server in servers:
        lines += [
            f"    ## start server {server.host}",
            "    server {",
            f"        server_name {server.host};",
            f"        listen {listen} ssl;",
            f"        ssl_certificate {server.certificate};",
            f"        ssl_certificate_key {server.key};",
        ]
        for loc in server.locations:
            lines += [f"        {line}" for line in _location_block(loc, port)]
        lines += ["    }", f"    ## end server {server.host}"]
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------------------------


def write_test_pki(directory: Path, hosts: Sequence[str]) -> dict[str, Path]:
    """A throw-away CA and one serving certificate per name in ``hosts`` (plus a default one).

    Returns paths: ``ca``, and ``<host>.crt`` / ``<host>.key`` for every host and for "default".
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zerotrust-aks authflow test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.crt"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    # "default" mirrors ingress-nginx's fake certificate for its default server.
    for host in [*hosts, "default"]:
        key = ec.generate_private_key(ec.SECP256R1())
        dns = host if host != "default" else "ingress.local"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        paths[f"{host}.crt"] = directory / f"{host}.crt"
        paths[f"{host}.key"] = directory / f"{host}.key"
        paths[f"{host}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{host}.key"].write_bytes(key_pem(key))
        paths[f"{host}.key"].chmod(0o600)
    return paths


def write_tls_secret_files(secret: Mapping[str, t.Any], directory: Path, name: str) -> tuple[Path, Path]:
    """Certificate and key files from a ``kubernetes.io/tls`` Secret (as read from the API)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    key.write_bytes(base64.b64decode(secret["data"]["tls.key"]))
    key.chmod(0o600)
    return cert, key


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (the program binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """A program under ``timeout`` (bounded lifetime) in its own session, logging to a file.

    ``stop()`` signals only this process group (the one ``start`` created): SIGTERM, which
    ``timeout`` passes on, then SIGKILL after a grace period.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        lifetime_s: int = 600,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{name}.cmd").write_text(shlex.join(self.argv) + "\n")
        command = ["timeout", "--signal=TERM", "--kill-after=10s", f"{lifetime_s}s", *self.argv]
        self._log = self.log_path.open("wb")
        # Only PATH from the caller: the program sees the environment its pod would, no more.
        process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=process_env, cwd=cwd, start_new_session=True
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}; log {self.log_path}:\n{self.log_tail()}"
            )

    def wait_until(self, ready: t.Callable[[], bool], timeout_s: float = 30.0, what: str = "ready") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_running()
            with contextlib.suppress(OSError, requests.RequestException):
                if ready():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not {what} after {timeout_s}s; log {self.log_path}:\n{self.log_tail()}")

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_ok(url: str, **kwargs: t.Any) -> bool:
    return requests.get(url, timeout=2, allow_redirects=False, **kwargs).status_code == 200


# --------------------------------------------------------------------------------------------
# Stand-in upstreams
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


class EchoUpstream:
    """Stand-in for colors-web (or any backend Service): answers every request with JSON of it.

    Not the real app: colors-web's image cannot run here (no container runtime). What the login
    flow needs from the upstream is observable through this one: whether a request arrived at
    all, and with which headers (``X-Auth-Request-Email`` from oauth2-proxy via nginx). Every
    request is also kept in ``requests`` (the tests check that none reached a backend no Ingress
    routes to).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[RecordedRequest] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                record = RecordedRequest(self.command, self.path, dict(self.headers.items()))
                upstream.requests.append(record)
                body = json.dumps(
                    {"upstream": upstream.name, "method": record.method, "path": record.path, "headers": record.headers}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

            def log_message(self, format: str, *args: t.Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"upstream-{name}", daemon=True)

    def start(self) -> EchoUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


# --------------------------------------------------------------------------------------------
# The scripted browser
# --------------------------------------------------------------------------------------------


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

    HTTPS requests for the site host on port 443 go to nginx's local port (like a DNS entry
    pointing the name at this machine); HTTP requests go only to 127.0.0.1 (the IdP); anything
    else raises :class:`OffSiteRequest` — redirects off the test's hosts are reported, never
    followed. Unlike a real browser it ignores SameSite; the flow here is top-level navigation,
    where Lax cookies are sent anyway.
    """

    def __init__(self, site_host: str, nginx_port: int, ca_file: Path) -> None:
        self.site_host = site_host
        self.session = requests.Session()
        # Hermetic: no proxy and no CA bundle from the environment (REQUESTS_CA_BUNDLE would
        # replace session.verify), no ~/.netrc.
        self.session.trust_env = False
        self.session.verify = str(ca_file)
        self.session.mount("https://", _PinnedAdapter({(site_host, 443): ("127.0.0.1", nginx_port)}))
        self.history: list[Hop] = []

    def site_url(self, path: str) -> str:
        return f"https://{self.site_host}{path}"

    def request(self, method: str, url: str, **kwargs: t.Any) -> requests.Response:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "http" and parsed.hostname != "127.0.0.1":
            raise OffSiteRequest(f"the scripted browser only reaches the test's hosts, not {url}")
        response = self.session.request(method, url, allow_redirects=False, timeout=15, **kwargs)
        self.history.append(Hop(method, url, response.status_code, response.headers.get("Location")))
        return response

    def get(self, url_or_path: str, **kwargs: t.Any) -> requests.Response:
        url = self.site_url(url_or_path) if url_or_path.startswith("/") else url_or_path
        return self.request("GET", url, **kwargs)

    def is_on_test_hosts(self, url: str) -> bool:
        parsed = urllib.parse.urlsplit(url)
        return (parsed.scheme, parsed.hostname, parsed.port) in {("https", self.site_host, None)} or (
            parsed.scheme == "http" and parsed.hostname == "127.0.0.1"
        )

    def navigate(
        self, url_or_path: str, *, credentials: tuple[str, str] | None = None, max_hops: int = 12
    ) -> requests.Response:
        """GET and follow redirects (and the IdP's login form with ``credentials``) to the end.

        Stops at the first response that is neither a redirect nor a login form, or at a
        redirect that leaves the test's hosts (returned unfollowed: check its Location).
        """
        response = self.get(url_or_path)
        for _hop in range(max_hops):
            if response.is_redirect:
                target = urllib.parse.urljoin(response.url, response.headers["Location"])
                if not self.is_on_test_hosts(target):
                    return response
                response = self.request("GET", target)
            elif credentials and self.is_login_form(response):
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

    def cookie(self, name: str) -> str | None:
        for cookie in self.cookies():
            if cookie.name == name:
                return cookie.value
        return None

    def set_cookie(self, name: str, value: str) -> None:
        for cookie in self.cookies():
            if cookie.name == name:
                self.session.cookies.clear(cookie.domain, cookie.path, cookie.name)
        self.session.cookies.set(name, value, domain=self.site_host, path="/", secure=True)


def iter_hops(hops: Iterable[Hop]) -> Iterator[str]:
    """Hops as readable lines, for assertion messages."""
    for hop in hops:
        yield f"{hop.method} {hop.url} -> {hop.status}" + (f" Location: {hop.location}" if hop.location else "")


# --------------------------------------------------------------------------------------------
# The whole stack
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdpUser:
    username: str = "jane"
    password: str = "correct horse battery staple"  # noqa: S105 - a test user of a test IdP
    email: str = "jane@example.com"
    groups: str = "zerotrust-users"


@dataclass(frozen=True)
class Binaries:
    oauth2_proxy: str
    idp: str
    nginx: str = "/usr/sbin/nginx"


def idp_argv(
    binary: str, *, listen: str, issuer_file: Path, client_id: str, client_secret: str, user: IdpUser
) -> list[str]:
    """The testbed IdP (testbed/idp: mockoidc with a login form) for one client and one user."""
    return [
        binary,
        f"--listen={listen}",
        f"--issuer-file={issuer_file}",
        f"--client-id={client_id}",
        f"--client-secret={client_secret}",
        f"--username={user.username}",
        f"--password={user.password}",
        f"--email={user.email}",
        f"--groups={user.groups}",
    ]


@dataclass
class LoginStack:
    """The running login flow: nginx (the ingress), oauth2-proxy, the IdP and stand-in upstreams."""

    host: str
    nginx_port: int
    ca_file: Path
    issuer_url: str
    oauth2_proxy_address: str
    invocation: Invocation
    upstreams: dict[str, EchoUpstream]  # by service_key()
    user: IdpUser
    nginx_conf: Path
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def browser(self) -> ScriptedBrowser:
        return ScriptedBrowser(self.host, self.nginx_port, self.ca_file)

    def check_running(self) -> None:
        for process in self.processes:
            process.check_running()


def oauth2_proxy_service_key(deployment: Mapping[str, t.Any], service_name: str | None = None) -> str:
    """service_key() of the Service in front of the Deployment (same name unless told; port 4180)."""
    meta = deployment["metadata"]
    return service_key(service_name or meta["name"], 4180, meta["namespace"])


@contextlib.contextmanager
def login_stack(
    objects: AppliedObjects,
    binaries: Binaries,
    work_dir: Path,
    *,
    user: IdpUser | None = None,
    stand_in_services: Sequence[str] = (),
    oauth2_proxy_service: str | None = None,
    lifetime_s: int = 600,
    ingress_class: str = "nginx",
) -> Iterator[LoginStack]:
    """Start the IdP, oauth2-proxy (from the Deployment), stand-in upstreams and nginx (from the
    Ingresses); stop all of them on exit.

    Every backend Service the Ingresses route to gets an :class:`EchoUpstream`, except the
    oauth2-proxy Service, which is the real oauth2-proxy. ``stand_in_services`` (service keys) get
    one too even when no Ingress routes to them, so a test can prove that nothing reaches them.
    """
    user = user or IdpUser()
    log_dir = work_dir / "logs"
    state_dir = work_dir / "nginx"
    for sub in ("", "client-body", "proxy-temp", "fastcgi-temp", "uwsgi-temp", "scgi-temp"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    deployment = objects.deployment
    client_id = secret_value(objects.secrets, *_env_secret_ref(deployment, "OAUTH2_PROXY_CLIENT_ID"))
    client_secret = secret_value(objects.secrets, *_env_secret_ref(deployment, "OAUTH2_PROXY_CLIENT_SECRET"))
    processes: list[ManagedProcess] = []
    upstreams: dict[str, EchoUpstream] = {}
    try:
        # The IdP first: oauth2-proxy reads the issuer's discovery document when it starts.
        issuer_file = work_dir / "issuer"
        idp = ManagedProcess(
            "idp",
            idp_argv(
                binaries.idp,
                listen=f"127.0.0.1:{free_port()}",
                issuer_file=issuer_file,
                client_id=client_id,
                client_secret=client_secret,
                user=user,
            ),
            log_dir,
            lifetime_s=lifetime_s,
        )
        processes.append(idp)
        idp.wait_until(lambda: issuer_file.exists() and issuer_file.read_text().strip() != "", what="listening")
        issuer_url = issuer_file.read_text().strip()
        idp.wait_until(lambda: http_ok(issuer_url + "/.well-known/openid-configuration"), what="serving discovery")

        oauth2_proxy_address = f"127.0.0.1:{free_port()}"
        invocation = oauth2_proxy_invocation(
            deployment, objects.secrets, binary=binaries.oauth2_proxy, http_address=oauth2_proxy_address,
            issuer_url=issuer_url,
        )  # fmt: skip
        proxy = ManagedProcess("oauth2-proxy", invocation.argv, log_dir, env=invocation.env, lifetime_s=lifetime_s)
        processes.append(proxy)
        proxy.wait_until(lambda: http_ok(f"http://{oauth2_proxy_address}/ping"), what="answering /ping")

        addresses = {oauth2_proxy_service_key(deployment, oauth2_proxy_service): oauth2_proxy_address}
        referenced = {
            backend_key(ing, p["backend"])
            for ing in objects.ingresses
            if ing["spec"].get("ingressClassName") == ingress_class
            for rule in ing["spec"].get("rules") or []
            for p in rule["http"]["paths"]
        }
        for key in sorted((referenced | set(stand_in_services)) - set(addresses)):
            upstreams[key] = EchoUpstream(key.split(".")[0]).start()
            addresses[key] = upstreams[key].address

        host = objects.host
        pki = write_test_pki(work_dir / "pki", [host])
        certificates: dict[str, tuple[Path, Path]] = {}
        for ing in objects.ingresses:
            for entry in ing["spec"].get("tls") or []:
                key = f"{ing['metadata']['namespace']}/{entry['secretName']}"
                if key in objects.tls_secrets:
                    certificates[key] = write_tls_secret_files(
                        objects.tls_secrets[key], work_dir / "tls", key.replace("/", "_")
                    )
                else:
                    certificates[key] = (pki[f"{host}.crt"], pki[f"{host}.key"])

        nginx_port = free_port()
        servers = servers_from_ingresses(
            objects.ingresses, addresses, certificates, objects.controller_config, ingress_class
        )
        (site,) = [server for server in servers if server.host == host]
        # Our certificates chain to the test CA; a Secret's certificate (the tls role signs it
        # itself) is its own trust anchor.
        ca_file = pki["ca"] if site.certificate.is_relative_to(work_dir / "pki") else site.certificate
        conf = state_dir / "nginx.conf"
        conf.write_text(
            nginx_config(
                servers,
                listen=f"127.0.0.1:{nginx_port}",
                state_dir=state_dir,
                default_certificate=(pki["default.crt"], pki["default.key"]),
                controller_config=objects.controller_config,
                run_as_root=os.geteuid() == 0,
            )
        )
        nginx_argv = [binaries.nginx, "-p", str(state_dir), "-c", str(conf), "-e", str(state_dir / "error.log")]
        test = subprocess.run([*nginx_argv, "-t"], capture_output=True, text=True, timeout=30, check=False)
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t rejects {conf}:\n{test.stderr}")
        nginx = ManagedProcess("nginx", [*nginx_argv, "-g", "daemon off;"], log_dir, lifetime_s=lifetime_s)
        processes.append(nginx)
        nginx.wait_until(lambda: _accepts(nginx_port), what=f"listening on 127.0.0.1:{nginx_port}")

        yield LoginStack(
            host=host,
            nginx_port=nginx_port,
            ca_file=ca_file,
            issuer_url=issuer_url,
            oauth2_proxy_address=oauth2_proxy_address,
            invocation=invocation,
            upstreams=upstreams,
            user=user,
            nginx_conf=conf,
            log_dir=log_dir,
            processes=processes,
        )
    finally:
        for process in reversed(processes):
            process.stop()
        for upstream in upstreams.values():
            upstream.stop()


def _env_secret_ref(deployment: Mapping[str, t.Any], env_name: str, container: str = "oauth2-proxy") -> tuple[str, str]:
    for entry in _container(deployment, container).get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if entry["name"] == env_name and ref:
            return ref["name"], ref["key"]
    raise UnsupportedObject(f"container {container!r} has no env {env_name} from a secretKeyRef")


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
