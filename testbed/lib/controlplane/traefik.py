"""Traefik (the gateway-api edge's controller) as a process against the testbed's API server.

Used by `testbed up --traefik` and by the test suites, which start their own Traefik:

    from controlplane import traefik
    traefik.grant_access(api, token_file, expiration_s=3600)          # ServiceAccount + token
    flags = traefik.arguments(api_url=..., token_file=..., ca_file=...,
                              entrypoints={"web": "127.0.0.1:8000", "websecure": "127.0.0.1:8443"},
                              ping_address="127.0.0.1:8082", extra=["--providers.kubernetescrd.namespaces=auth"])
    process = traefik.start("traefik", binary, log_dir, flags, lifetime=600)
    process.wait_until(lambda: traefik.ping("127.0.0.1:8082"), 30, "Traefik /ping")

or build the command line only: `[str(binary), *traefik.arguments(api_url=..., ...)]`.

How Traefik v3.6 reaches an API server from outside a cluster: each Kubernetes provider
(`kubernetesgateway`, `kubernetescrd`) takes `endpoint` (the API server URL), `token` (a bearer
token, or the path of a file holding one) and `certauthfilepath` (the CA of the API server's
certificate). There is no client-certificate option; the testbed's admin kubeconfig uses one,
so Traefik gets a ServiceAccount token instead (`grant_access`). Traefik prefers, in this order,
the in-cluster config (when KUBERNETES_SERVICE_HOST is set), the file in $KUBECONFIG, and only
then these flags: `start` therefore gives it a clean environment (PATH only), or an exported
KUBECONFIG would silently win.

Its static configuration comes from the first of: a configuration file, the flags, TRAEFIK_*
environment variables. A file is searched in /etc/traefik, $XDG_CONFIG_HOME, $HOME/.config and
the working directory, and one found there wins over every flag: `start` refuses to run when
/etc/traefik holds one and runs Traefik without HOME in a working directory of its own.

Gateway listeners bind to entrypoints by port number alone (an entrypoint whose address ends in
":<listener port>"): a Gateway's listener ports must be the ports given here. A listener without
one gets the condition Accepted=False, reason PortUnavailable.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from testkit.process import ManagedProcess

from .api import Api

CONTROLLER_NAME = "traefik.io/gateway-controller"  # a GatewayClass's spec.controllerName for Traefik
PING_ENTRYPOINT = "traefik"  # Traefik's own entrypoint (ping); never serves routes here
# Several Traefiks may watch one API server (the testbed's own from `up --traefik`, and those
# tests start): each reconciles every GatewayClass of CONTROLLER_NAME that its label selector
# matches, and two writing one Gateway's status would fight. A Traefik of a test selects
# `PRIVATE_LABEL=<its id>` (`private_selector`) and labels its GatewayClass so; the testbed's
# own selects every GatewayClass without the label (SHARED_SELECTOR).
PRIVATE_LABEL = "zerotrust-aks.testbed/traefik"
SHARED_SELECTOR = f"!{PRIVATE_LABEL}"
# Where Traefik looks for a static configuration file that would override every flag.
SYSTEM_CONFIG_FILES = tuple(Path(f"/etc/traefik/traefik.{ext}") for ext in ("toml", "yaml", "yml"))

SERVICE_ACCOUNT = "zerotrust-aks-testbed-traefik"
SERVICE_ACCOUNT_NAMESPACE = "kube-system"
FIELD_MANAGER = "zerotrust-aks-testbed"

# What Traefik v3.6.12 documents for its two Kubernetes providers (the union of
# docs/content/reference/dynamic-configuration/kubernetes-gateway-rbac.yml and
# kubernetes-crd-rbac.yml in its module), minus Ingress (that provider is not enabled), pods
# (only for OpenTelemetry attributes, not enabled) and referencegrants/status (no such
# subresource). The testbed's Traefik runs with exactly this: a rule it lacks shows as
# "forbidden" in its log and as a 403 in the audit log.
CLUSTER_ROLE_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["services", "secrets", "configmaps"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "resources": [
            "gatewayclasses",
            "gateways",
            "httproutes",
            "grpcroutes",
            "tcproutes",
            "tlsroutes",
            "referencegrants",
            "backendtlspolicies",
        ],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "resources": [
            "gatewayclasses/status",
            "gateways/status",
            "httproutes/status",
            "grpcroutes/status",
            "tcproutes/status",
            "tlsroutes/status",
            "backendtlspolicies/status",
        ],
        "verbs": ["update"],
    },
    {
        "apiGroups": ["traefik.io"],
        "resources": [
            "middlewares",
            "middlewaretcps",
            "ingressroutes",
            "traefikservices",
            "ingressroutetcps",
            "ingressrouteudps",
            "tlsoptions",
            "tlsstores",
            "serverstransports",
            "serverstransporttcps",
        ],
        "verbs": ["get", "list", "watch"],
    },
]


class TraefikError(Exception):
    pass


def arguments(
    *,
    api_url: str,
    token_file: Path | str,
    ca_file: Path | str,
    entrypoints: Mapping[str, str],
    ping_address: str,
    log_level: str = "INFO",
    access_log: bool | Path | str = True,
    status_ip: str | None = "127.0.0.1",
    gateway_class_selector: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Traefik's flags (without the program): the Gateway API and Kubernetes CRD providers
    against API_URL with the bearer token in TOKEN_FILE and the CA in CA_FILE; one entrypoint
    per ENTRYPOINTS item (name -> "127.0.0.1:PORT"); /ping on PING_ADDRESS (Traefik's own
    entrypoint, nothing else is served there: no API, no dashboard). ACCESS_LOG: True to the
    process's output (common log format), a path for JSON lines in that file, False for none.
    STATUS_IP: the address Traefik writes into each Gateway's status.addresses (None: none).
    GATEWAY_CLASS_SELECTOR: a label selector of the GatewayClasses it takes (None: all of
    CONTROLLER_NAME; see PRIVATE_LABEL). EXTRA comes last (later flags win), e.g. provider namespaces."""
    if PING_ENTRYPOINT in entrypoints:
        raise TraefikError(f"entrypoint name {PING_ENTRYPOINT!r} is Traefik's own (ping): pick another")
    args = [
        # No calls home (the version check would reach out to the internet).
        "--global.checknewversion=false",
        "--global.sendanonymoususage=false",
        f"--log.level={log_level}",
        "--log.nocolor=true",  # a log file, not a terminal
    ]
    for name, address in entrypoints.items():
        args.append(f"--entrypoints.{name}.address={address}")
    args += [
        f"--entrypoints.{PING_ENTRYPOINT}.address={ping_address}",
        "--ping=true",
        f"--ping.entrypoint={PING_ENTRYPOINT}",
    ]
    for provider in ("kubernetesgateway", "kubernetescrd"):
        args += [
            f"--providers.{provider}=true",
            f"--providers.{provider}.endpoint={api_url}",
            f"--providers.{provider}.token={token_file}",
            f"--providers.{provider}.certauthfilepath={ca_file}",
        ]
    if gateway_class_selector:
        args.append(f"--providers.kubernetesgateway.labelselector={gateway_class_selector}")
    if status_ip:
        args.append(f"--providers.kubernetesgateway.statusaddress.ip={status_ip}")
    if access_log is True:
        args.append("--accesslog=true")
    elif access_log:
        args += ["--accesslog=true", f"--accesslog.filepath={access_log}", "--accesslog.format=json"]
    return [*args, *extra]


def private_selector(traefik_id: str) -> str:
    """The GatewayClass label selector of a Traefik that only takes classes labelled for it."""
    return f"{PRIVATE_LABEL}={traefik_id}"


def check_no_system_config() -> None:
    """Raise when /etc/traefik holds a configuration file: Traefik would ignore every flag."""
    for path in SYSTEM_CONFIG_FILES:
        if path.exists():
            raise TraefikError(f"{path} exists: Traefik would read it instead of the flags the testbed gives it")


def start(
    name: str,
    binary: Path | str,
    log_dir: Path,
    flags: Sequence[str],
    *,
    lifetime: str | float,
    kill_after: str = "10s",
    work_dir: Path | None = None,
) -> ManagedProcess:
    """Start Traefik (BINARY with FLAGS, which `arguments` gives) under `timeout LIFETIME`, logging to
    LOG_DIR/NAME.log, with PATH as its only environment variable and WORK_DIR (default
    LOG_DIR/NAME.d) as its working directory, so no KUBECONFIG, TRAEFIK_* variable or
    traefik.{toml,yaml,yml} of the caller's overrides the flags."""
    check_no_system_config()
    cwd = work_dir or log_dir / f"{name}.d"
    cwd.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name, [str(binary), *flags], log_dir, inherit_env=False, lifetime=lifetime, kill_after=kill_after, cwd=cwd
    )


def ping(address: str, timeout: float = 2) -> bool:
    """Traefik answers /ping on ADDRESS ("127.0.0.1:PORT") with 200 OK."""
    with urllib.request.urlopen(f"http://{address}/ping", timeout=timeout) as r:
        return bool(r.status == 200)


def _apply(api: Api, path: str, body: dict[str, Any]) -> None:
    status, answer = api.request(
        "PATCH", f"{path}?fieldManager={FIELD_MANAGER}&force=true", body, content_type="application/apply-patch+yaml"
    )
    if status not in (200, 201):
        raise TraefikError(f"applying {body['kind']} {body['metadata']['name']}: HTTP {status}: {answer}")


def grant_access(
    api: Api,
    token_file: Path,
    *,
    expiration_s: int,
    name: str = SERVICE_ACCOUNT,
    namespace: str = SERVICE_ACCOUNT_NAMESPACE,
) -> None:
    """Make ServiceAccount NAMESPACE/NAME with the ClusterRole CLUSTER_ROLE_RULES (both named
    NAME) and write a token of it, valid EXPIRATION_S seconds (at least 600), to TOKEN_FILE
    (mode 0600). API is an admin client (server-side apply, so calling it again is harmless)."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
    _apply(api, f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", account)
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": CLUSTER_ROLE_RULES,
    }
    _apply(api, f"{rbac}/clusterroles/{name}", role)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    _apply(api, f"{rbac}/clusterrolebindings/{name}", binding)
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": max(int(expiration_s), 600)},
    }
    status, answer = api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", request)
    if status != 201:
        raise TraefikError(f"TokenRequest for ServiceAccount {namespace}/{name}: HTTP {status}: {answer}")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.touch(mode=0o600)
    token_file.chmod(0o600)
    token_file.write_text(answer["status"]["token"])


def apply_crds(kubectl: Path | str, kubeconfig: Path | str, crds_file: Path | str, timeout_s: int = 60) -> None:
    """Apply CRDS_FILE (`testbed/build --print-path traefik-crds`: the Gateway API standard CRDs
    and Traefik's traefik.io CRDs) with server-side apply (the CRDs are too large for the
    last-applied annotation of a client-side apply) and wait until each is Established."""
    base = [str(kubectl), f"--kubeconfig={kubeconfig}"]
    for args in (
        ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", str(crds_file)],
        ["wait", "--for=condition=Established", f"--timeout={timeout_s}s", "-f", str(crds_file)],
    ):
        done = subprocess.run([*base, *args], capture_output=True, text=True, check=False, timeout=timeout_s + 30)
        if done.returncode != 0:
            raise TraefikError(f"kubectl {args[0]} -f {crds_file} failed: {done.stderr.strip() or done.stdout.strip()}")
