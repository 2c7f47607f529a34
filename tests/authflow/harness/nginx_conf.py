"""The nginx configuration for the servers ingress-nginx would build, after its ``nginx.tmpl``."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path

from .ingress_nginx import (
    Location,
    Server,
    auth_location_name,
    auth_response_header_lines,
    auth_signin_redirect,
    nginx_size,
    signin_location_name,
)
from .objects import UnsupportedObject

# ConfigMap keys of the ingress-nginx controller the generator honours (http level), and keys
# that need nothing from it.
SUPPORTED_CONTROLLER_KEYS = frozenset({"proxy-buffer-size", "large-client-header-buffers"})
IGNORED_CONTROLLER_KEYS: Mapping[str, str] = {
    "allow-snippet-annotations": "the generator supports no snippet annotation at all",
}
# ingress-nginx's default (internal/ingress/defaults).
DEFAULT_LARGE_CLIENT_HEADER_BUFFERS = "4 8k"


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
    nginx_size("large-client-header-buffers", size)
    s = str(state_dir)
    lines = [
        "# Generated by tests/authflow/harness/nginx_conf.py from Ingress objects, after ingress-nginx's nginx.tmpl.",
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
