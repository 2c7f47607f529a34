# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): where and how k8s_apply connects.

The options and their K8S_AUTH_* environment fallbacks are kubernetes.core's
(``args_common.AUTH_ARG_SPEC``/``AUTH_ARG_MAP``), resolved with the same precedence as its
``k8s.client._create_auth_spec``/``_create_configuration``: explicit host + credentials, else the
kubeconfig (option, K8S_AUTH_KUBECONFIG, KUBECONFIG, ~/.kube/config), else in-cluster; explicit
options then override what the kubeconfig says.

Why not call kubernetes.core's code: it imports the ``kubernetes`` package, whose
``kubernetes.client`` loads every API model (~1 s per module run, more than all the requests of
a no-op run). This file reads kubeconfigs itself (tokens, token files, client certificates, basic
auth, exec credential plugins) and hands only the legacy ``auth-provider`` entries to the
``kubernetes`` package, imported then and only then.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import typing as t
from dataclasses import dataclass, field

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_MAP, AUTH_ARG_SPEC

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_KUBECONFIG = "~/.kube/config"


def auth_argument_spec() -> dict[str, t.Any]:
    """kubernetes.core's connection options, except that ``kubeconfig`` is not ``no_log``.

    Ansible masks every occurrence of a no_log string in all output, so with kubernetes.core's
    spec an error could never name the kubeconfig path the user passed. The module instead adds
    the leaf strings of an in-memory (dict) kubeconfig to its no_log values itself."""
    spec = {name: dict(value) for name, value in AUTH_ARG_SPEC.items()}
    spec["kubeconfig"]["no_log"] = False
    return spec


class ConnectionConfigError(Exception):
    """The connection settings are unusable (missing kubeconfig, unknown context, ...)."""


@dataclass
class Connection:
    """Everything needed to open HTTPS connections to one API server."""

    host: str = ""
    source: str = ""  # for messages: which kubeconfig/context or options gave these settings
    verify: bool = True
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: str | None = None  # PEM
    key_data: str | None = None  # PEM
    token: str | None = None
    username: str | None = None
    password: str | None = None
    server_hostname: str | None = None
    proxy: str | None = None
    no_proxy: str | None = None
    proxy_headers: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str | list[str]] = field(default_factory=dict)


def _env_bool(value: str) -> bool:
    return value.lower() not in ("0", "false", "no")


def auth_params(params: t.Mapping[str, t.Any], environ: t.Mapping[str, str]) -> dict[str, t.Any]:
    """The connection options with kubernetes.core's environment fallbacks applied:
    K8S_AUTH_<OPTION> or K8S_AUTH_<CLIENT NAME> (K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT, ...)."""
    auth: dict[str, t.Any] = {}
    for client_name, option in AUTH_ARG_MAP.items():
        if params.get(option) is not None:
            auth[option] = params[option]
        elif option == "proxy_headers":
            headers = {}
            for key in AUTH_ARG_SPEC["proxy_headers"]["options"]:
                value = environ.get(f"K8S_AUTH_PROXY_HEADERS_{key.upper()}")
                if value is not None:
                    headers[key] = value
            if headers:
                auth[option] = headers
        else:
            value = environ.get(f"K8S_AUTH_{option.upper()}") or environ.get(f"K8S_AUTH_{client_name.upper()}")
            if value is not None:
                auth[option] = _env_bool(value) if AUTH_ARG_SPEC[option].get("type") == "bool" else value
    for option in ("impersonate_user", "impersonate_groups"):
        given: t.Any = params.get(option)
        if given is None and environ.get(f"K8S_AUTH_{option.upper()}"):
            env_value = environ[f"K8S_AUTH_{option.upper()}"]
            given = [v for v in env_value.split(",") if v] if option == "impersonate_groups" else env_value
        if given:
            auth[option] = given
    return auth


def resolve(params: t.Mapping[str, t.Any], environ: t.Mapping[str, str] | None = None) -> Connection:
    """The Connection the options (and environment) describe."""
    environ = os.environ if environ is None else environ
    auth = auth_params(params, environ)
    host = str(auth.get("host") or "").rstrip("/")
    explicit = host and (
        auth.get("api_key")
        or (auth.get("username") and auth.get("password"))
        or (auth.get("client_cert") and auth.get("client_key"))
    )
    if explicit:
        conn = Connection(source="the host option (or K8S_AUTH_HOST)")
    elif auth.get("kubeconfig") or auth.get("context"):
        conn = load_kubeconfig(auth.get("kubeconfig"), auth.get("context"), environ)
    elif environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(f"{IN_CLUSTER_DIR}/token"):
        conn = in_cluster(environ)
    else:
        conn = load_kubeconfig(None, None, environ)
    if host:
        conn.host = host
    overrides = {
        "api_key": "token",
        "username": "username",
        "password": "password",
        "validate_certs": "verify",
        "ca_cert": "ca_file",
        "client_cert": "cert_file",
        "client_key": "key_file",
        "proxy": "proxy",
        "no_proxy": "no_proxy",
        "proxy_headers": "proxy_headers",
    }
    for option, attribute in overrides.items():
        if auth.get(option) is not None:
            setattr(conn, attribute, auth[option])
    if auth.get("ca_cert"):
        conn.ca_data = None
    if auth.get("client_cert"):
        conn.cert_data = None
    if auth.get("client_key"):
        conn.key_data = None
    if auth.get("impersonate_user"):
        conn.headers["Impersonate-User"] = auth["impersonate_user"]
    if auth.get("impersonate_groups"):
        conn.headers["Impersonate-Group"] = list(auth["impersonate_groups"])
    if not conn.host:
        raise ConnectionConfigError(f"no API server address: {conn.source} names no server")
    return conn


def in_cluster(environ: t.Mapping[str, str]) -> Connection:
    host = environ["KUBERNETES_SERVICE_HOST"]
    if ":" in host:  # IPv6
        host = f"[{host}]"
    with open(f"{IN_CLUSTER_DIR}/token", encoding="utf-8") as stream:
        token = stream.read().strip()
    return Connection(
        host=f"https://{host}:{environ.get('KUBERNETES_SERVICE_PORT', '443')}",
        source="the in-cluster service account",
        ca_file=f"{IN_CLUSTER_DIR}/ca.crt",
        token=token,
    )


def _kubeconfig_paths(kubeconfig: str | None, environ: t.Mapping[str, str]) -> tuple[list[str], str]:
    if kubeconfig:
        return [os.path.expanduser(kubeconfig)], "the kubeconfig option (or K8S_AUTH_KUBECONFIG)"
    if environ.get("KUBECONFIG"):
        return [os.path.expanduser(p) for p in environ["KUBECONFIG"].split(os.pathsep) if p], "KUBECONFIG"
    return [os.path.expanduser(DEFAULT_KUBECONFIG)], "the default location"


def _read_kubeconfigs(
    kubeconfig: str | dict[str, t.Any] | None, environ: t.Mapping[str, str]
) -> tuple[dict[str, t.Any], str, str]:
    """(merged kubeconfig, description for messages, directory relative paths start from)."""
    if isinstance(kubeconfig, dict):
        return kubeconfig, "the in-memory kubeconfig", os.getcwd()
    import yaml  # only here: the explicit-host path never parses YAML

    paths, origin = _kubeconfig_paths(kubeconfig, environ)
    existing = [p for p in paths if os.path.isfile(p)]
    if not existing:
        raise ConnectionConfigError(
            f"kubeconfig {', '.join(paths)} (from {origin}) does not exist; set the kubeconfig option, "
            "K8S_AUTH_KUBECONFIG or KUBECONFIG, or host with api_key or a client certificate"
        )
    merged: dict[str, t.Any] = {"current-context": "", "clusters": [], "contexts": [], "users": []}
    for path in existing:
        try:
            with open(path, encoding="utf-8") as stream:
                loaded = yaml.safe_load(stream) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConnectionConfigError(f"cannot read kubeconfig {path}: {e}") from e
        if not isinstance(loaded, dict):
            raise ConnectionConfigError(f"kubeconfig {path} is not a kubeconfig (not a mapping)")
        # KUBECONFIG merge rule: the first file that defines a name or current-context wins.
        if not merged["current-context"]:
            merged["current-context"] = loaded.get("current-context") or ""
        for section in ("clusters", "contexts", "users"):
            names = {entry.get("name") for entry in merged[section]}
            merged[section].extend(e for e in loaded.get(section) or [] if e.get("name") not in names)
    return merged, f"kubeconfig {os.pathsep.join(existing)}", os.path.dirname(existing[0])


def _named(config: t.Mapping[str, t.Any], section: str, name: str) -> dict[str, t.Any] | None:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            value = entry.get(section[:-1])
            return value if isinstance(value, dict) else {}
    return None


def load_kubeconfig(
    kubeconfig: str | dict[str, t.Any] | None, context: str | None, environ: t.Mapping[str, str]
) -> Connection:
    config, described, base_dir = _read_kubeconfigs(kubeconfig, environ)
    context_name = context or config.get("current-context") or ""
    source = f"{described}, context '{context_name}'"
    if not context_name:
        raise ConnectionConfigError(f"{described} has no current-context; set the context option")
    ctx = _named(config, "contexts", context_name)
    if ctx is None:
        known = ", ".join(str(c.get("name")) for c in config.get("contexts") or []) or "none"
        raise ConnectionConfigError(f"{source}: no such context (contexts: {known})")
    cluster = _named(config, "clusters", str(ctx.get("cluster") or ""))
    if cluster is None:
        raise ConnectionConfigError(f"{source}: cluster '{ctx.get('cluster')}' is not defined")
    user = _named(config, "users", str(ctx.get("user") or "")) or {}

    def path(value: t.Any) -> str | None:
        return os.path.join(base_dir, os.path.expanduser(str(value))) if value else None

    def pem(value: t.Any) -> str | None:
        return base64.b64decode(str(value)).decode() if value else None

    conn = Connection(
        host=str(cluster.get("server") or "").rstrip("/"),
        source=source,
        verify=not cluster.get("insecure-skip-tls-verify", False),
        ca_file=path(cluster.get("certificate-authority")),
        ca_data=pem(cluster.get("certificate-authority-data")),
        server_hostname=cluster.get("tls-server-name"),
        proxy=cluster.get("proxy-url"),
        cert_file=path(user.get("client-certificate")),
        key_file=path(user.get("client-key")),
        cert_data=pem(user.get("client-certificate-data")),
        key_data=pem(user.get("client-key-data")),
        token=user.get("token"),
        username=user.get("username"),
        password=user.get("password"),
    )
    if user.get("tokenFile") and not conn.token:
        with open(str(path(user["tokenFile"])), encoding="utf-8") as stream:
            conn.token = stream.read().strip()
    if user.get("exec"):
        _run_exec_plugin(user["exec"], conn, environ)
    elif user.get("auth-provider"):
        _auth_provider_via_kubernetes(kubeconfig, context_name, conn)
    return conn


def _run_exec_plugin(spec: t.Mapping[str, t.Any], conn: Connection, environ: t.Mapping[str, str]) -> None:
    """client.authentication.k8s.io exec credential plugin (kubelogin on AKS, aws, gke-gcloud...)."""
    command = [str(spec.get("command")), *[str(a) for a in spec.get("args") or []]]
    env = dict(environ)
    env.update({str(e["name"]): str(e["value"]) for e in spec.get("env") or []})
    api_version = spec.get("apiVersion") or "client.authentication.k8s.io/v1"
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConnectionConfigError(f"{conn.source}: exec credential plugin {command[0]} failed: {e}") from e
    if done.returncode != 0:
        raise ConnectionConfigError(
            f"{conn.source}: exec credential plugin {command[0]} exited {done.returncode}: {done.stderr.strip()[-500:]}"
        )
    try:
        status = json.loads(done.stdout).get("status") or {}
    except ValueError as e:
        raise ConnectionConfigError(f"{conn.source}: exec credential plugin {command[0]} printed no JSON") from e
    conn.token = status.get("token") or conn.token
    if status.get("clientCertificateData"):
        conn.cert_data, conn.key_data = status["clientCertificateData"], status.get("clientKeyData")


def _auth_provider_via_kubernetes(kubeconfig: str | dict[str, t.Any] | None, context: str, conn: Connection) -> None:
    """Legacy auth-provider entries (oidc, ...): let the kubernetes package compute the token."""
    try:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
    except ImportError as e:
        raise ConnectionConfigError(f"{conn.source}: its auth-provider needs the kubernetes Python package") from e
    configuration = k8s_client.Configuration()
    if isinstance(kubeconfig, dict):
        k8s_config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
            kubeconfig, context=context, client_configuration=configuration
        )
    else:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    authorization = configuration.get_api_key_with_prefix("authorization")
    if authorization and authorization.startswith("Bearer "):
        conn.token = authorization[len("Bearer ") :]
