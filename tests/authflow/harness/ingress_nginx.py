"""What ingress-nginx makes of the Ingresses: locations per host, after its ``template.go``.

The annotation parsing and the names ingress-nginx computes (auth location, sign-in location,
sign-in redirect, auth response headers), turned into :class:`Server` / :class:`Location` values
that :mod:`.nginx_conf` writes out as nginx directives.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import typing as t
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .objects import UnsupportedObject

ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
CLUSTER_DOMAIN = "cluster.local"

# Annotations the generator turns into nginx directives, as ingress-nginx does.
SUPPORTED_ANNOTATIONS = frozenset(
    {"auth-url", "auth-signin", "auth-response-headers", "proxy-buffer-size"},
)
# Annotations the roles set that have no bearing on the login flow; each with the reason it may
# be left out. Any other nginx.ingress.kubernetes.io/* annotation makes ingress_locations() fail, so a
# new annotation in a role cannot silently go untested.
IGNORED_ANNOTATIONS: Mapping[str, str] = {
    "affinity": "sticky sessions pick one of several endpoints; the harness runs one upstream",
    "session-cookie-name": "belongs to affinity (see there)",
    "session-cookie-secure": "belongs to affinity (see there)",
}

# ingress-nginx's default (internal/ingress/defaults).
DEFAULT_PROXY_BUFFER_SIZE = "4k"


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


def nginx_size(annotation: str, value: str) -> str:
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
    buffer_size = nginx_size(
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
