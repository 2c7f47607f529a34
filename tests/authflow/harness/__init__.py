"""Auth-flow harness: real oauth2-proxy, real IdP and Debian nginx configured from Kubernetes objects.

Layer 5 of the test pyramid (docs/DEVELOPING.md). The inputs are the objects the cluster layer
applies — the oauth2-proxy Deployment with the Secrets its env references, and the Ingresses —
either read back from an API server (:func:`objects_from_cluster`) or taken from a render folder
(:func:`objects_from_render`). From them the harness derives, with pure functions:

- the oauth2-proxy command line and environment (:func:`oauth2_proxy_invocation`): the container's
  args and env exactly, with two documented overrides (listen address, issuer URL);
- an nginx configuration that does what ingress-nginx does for the Ingress annotations the roles
  use (:func:`ingress_locations`, :func:`servers_from_ingresses`, :func:`nginx_config`), modelled
  on ingress-nginx's ``nginx.tmpl`` and ``template.go``.

and it runs the programs (testkit's ``ManagedProcess``: bounded lifetime, stopped by PID), a stand-in
upstream (:class:`EchoUpstream`) and a :class:`ScriptedBrowser`; :func:`login_stack` starts them all.
Edge-agnostic pieces are shared with tests/gateway (real Traefik): the objects' Deployment and
Secrets, the oauth2-proxy invocation, the upstream (on any address), the scripted browser (to any
edge address) and :class:`Chromium`, a real browser.

Modules, one concern each:

========================  =======================================================================
``objects``               the applied objects: from a render folder or an API server; Secrets
``oauth2_proxy``          oauth2-proxy's argv and env from the Deployment
``ingress_nginx``         Ingress annotations -> locations per host, as ingress-nginx computes them
``nginx_conf``            those locations -> nginx.conf, as ingress-nginx's nginx.tmpl writes them
``tls``                   certificates for nginx (testkit's PKI, or a TLS Secret's files)
``upstream``              the echoing stand-in upstream
``browser``               the scripted browser
``chromium``              a real browser: headless Chromium over the DevTools protocol
``stack``                 the whole login flow, started and stopped
========================  =======================================================================

This package is the public API: import names from ``harness``, not from its modules.
"""

from __future__ import annotations

from .browser import Hop, OffSiteRequest, ScriptedBrowser, iter_hops
from .chromium import BrowserError, Chromium, Page, chromium_binary, spki_sha256
from .ingress_nginx import (
    ANNOTATION_PREFIX,
    CLUSTER_DOMAIN,
    DEFAULT_PROXY_BUFFER_SIZE,
    IGNORED_ANNOTATIONS,
    SUPPORTED_ANNOTATIONS,
    Location,
    Server,
    auth_location_name,
    auth_response_header_lines,
    auth_signin_redirect,
    backend_key,
    ingress_locations,
    servers_from_ingresses,
    service_key,
    signin_location_name,
)
from .nginx_conf import (
    DEFAULT_LARGE_CLIENT_HEADER_BUFFERS,
    IGNORED_CONTROLLER_KEYS,
    SUPPORTED_CONTROLLER_KEYS,
    nginx_config,
)
from .oauth2_proxy import Invocation, Override, deployed_flag, oauth2_proxy_invocation
from .objects import (
    AppliedObjects,
    UnsupportedObject,
    make_secret,
    objects_from_cluster,
    objects_from_render,
    referenced_secret_names,
    secret_value,
)
from .stack import (
    Binaries,
    IdpSettings,
    IdpUser,
    LoginStack,
    TokenRequest,
    http_ok,
    idp_argv,
    login_stack,
    oauth2_proxy_service_key,
    start_idp,
    write_users_file,
)
from .tls import write_test_pki, write_tls_secret_files
from .upstream import EchoUpstream, RecordedRequest

__all__ = [
    "ANNOTATION_PREFIX",
    "CLUSTER_DOMAIN",
    "DEFAULT_LARGE_CLIENT_HEADER_BUFFERS",
    "DEFAULT_PROXY_BUFFER_SIZE",
    "IGNORED_ANNOTATIONS",
    "IGNORED_CONTROLLER_KEYS",
    "SUPPORTED_ANNOTATIONS",
    "SUPPORTED_CONTROLLER_KEYS",
    "AppliedObjects",
    "Binaries",
    "BrowserError",
    "Chromium",
    "EchoUpstream",
    "Hop",
    "IdpSettings",
    "IdpUser",
    "Invocation",
    "Location",
    "LoginStack",
    "OffSiteRequest",
    "Override",
    "Page",
    "RecordedRequest",
    "ScriptedBrowser",
    "Server",
    "TokenRequest",
    "UnsupportedObject",
    "auth_location_name",
    "auth_response_header_lines",
    "auth_signin_redirect",
    "backend_key",
    "chromium_binary",
    "deployed_flag",
    "http_ok",
    "idp_argv",
    "ingress_locations",
    "iter_hops",
    "login_stack",
    "make_secret",
    "nginx_config",
    "oauth2_proxy_invocation",
    "oauth2_proxy_service_key",
    "objects_from_cluster",
    "objects_from_render",
    "referenced_secret_names",
    "secret_value",
    "servers_from_ingresses",
    "service_key",
    "signin_location_name",
    "spki_sha256",
    "start_idp",
    "write_test_pki",
    "write_tls_secret_files",
    "write_users_file",
]
