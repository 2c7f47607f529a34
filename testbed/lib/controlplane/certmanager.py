"""cert-manager's controllers (testbed/certmanager) as a process against the testbed's API server.

Used by `testbed up --cert-manager` and by the test suites, which start their own:

    from controlplane import certmanager
    certmanager.apply_crds(kubectl, admin_kubeconfig)                 # the role's CRD file
    token = certmanager.request_token(api, namespace="cert-manager", service_account="cert-manager",
                                      expiration_s=3600)                # run as a ServiceAccount
    certmanager.write_token_kubeconfig(admin_kubeconfig, path, token=token, user="cert-manager")
    flags = certmanager.arguments(kubeconfig=path, metrics_address="127.0.0.1:PORT",
                                  healthz_address="127.0.0.1:PORT")
    process = certmanager.start("cert-manager", binary, log_dir, flags, lifetime=600)
    process.wait_until(lambda: certmanager.live("127.0.0.1:PORT"), 30, "cert-manager /livez")

The controller reads everything from its kubeconfig (it has no in-cluster config to prefer:
`start` gives it PATH only). It runs no webhook: the API server takes cert-manager objects as
they are written, without cert-manager's defaulting and validation, so whatever a test creates
must be what cert-manager's webhook would accept. Leader election is off.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from testkit.process import ManagedProcess

from .api import Api
from .state import TESTBED_DIR

# What roles/cert_manager ships (scripts/vendor_crds.py writes it from cert-manager's module).
CRDS_DIR = TESTBED_DIR.parent / "roles" / "cert_manager" / "files" / "crds"
FIELD_MANAGER = "zerotrust-aks-testbed"
NAMESPACE = "cert-manager"


class CertManagerError(Exception):
    pass


def crds_file() -> Path:
    """The cert-manager CRD file of roles/cert_manager for CERT_MANAGER_VERSION."""
    versions = dict(
        line.split("=", 1)
        for line in (TESTBED_DIR / "versions.env").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    path = CRDS_DIR / f"cert-manager-{versions['CERT_MANAGER_VERSION']}.yml"
    if not path.exists():
        raise CertManagerError(f"{path} is missing: run python scripts/vendor_crds.py")
    return path


def arguments(
    *,
    kubeconfig: Path | str,
    metrics_address: str,
    healthz_address: str,
    cluster_resource_namespace: str = NAMESPACE,
    enable_gateway_api: bool = False,
    verbosity: int = 2,
    extra: Sequence[str] = (),
) -> list[str]:
    """The controller's flags (without the program); both addresses must be on loopback (the
    binary refuses others). EXTRA comes last, e.g. ``--controllers=*,-ingress-shim``."""
    args = [
        f"--kubeconfig={kubeconfig}",
        f"--cluster-resource-namespace={cluster_resource_namespace}",
        f"--metrics-listen-address={metrics_address}",
        f"--healthz-listen-address={healthz_address}",
        f"--v={verbosity}",
    ]
    if enable_gateway_api:
        args.append("--enable-gateway-api")
    return [*args, *extra]


def start(
    name: str,
    binary: Path | str,
    log_dir: Path,
    flags: Sequence[str],
    *,
    lifetime: str | float,
    kill_after: str = "10s",
) -> ManagedProcess:
    """Start the controller (BINARY with FLAGS, which `arguments` gives) under `timeout LIFETIME`,
    logging to LOG_DIR/NAME.log, with PATH as its only environment variable."""
    return ManagedProcess(
        name, [str(binary), *flags], log_dir, inherit_env=False, lifetime=lifetime, kill_after=kill_after
    )


def live(address: str, timeout: float = 2) -> bool:
    """The controller answers /livez on ADDRESS ("127.0.0.1:PORT") with 200 OK."""
    with urllib.request.urlopen(f"http://{address}/livez", timeout=timeout) as r:
        return bool(r.status == 200)


def apply_crds(kubectl: Path | str, kubeconfig: Path | str, path: Path | None = None, timeout_s: int = 60) -> None:
    """Apply the CRD file (default `crds_file()`) with server-side apply (too large for the
    last-applied annotation of a client-side apply) and wait until each is Established."""
    path = path or crds_file()
    base = [str(kubectl), f"--kubeconfig={kubeconfig}"]
    for args in (
        ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", str(path)],
        ["wait", "--for=condition=Established", f"--timeout={timeout_s}s", "-f", str(path)],
    ):
        done = subprocess.run([*base, *args], capture_output=True, text=True, check=False, timeout=timeout_s + 30)
        if done.returncode != 0:
            raise CertManagerError(f"kubectl {args[0]} -f {path} failed: {done.stderr.strip() or done.stdout.strip()}")


def request_token(api: Api, *, namespace: str, service_account: str, expiration_s: int) -> str:
    """A token of ServiceAccount NAMESPACE/SERVICE_ACCOUNT (which must exist), valid EXPIRATION_S
    seconds (at least 600). API is an admin client."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": max(int(expiration_s), 600)},
    }
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
    status, answer = api.request("POST", path, request)
    if status != 201:
        raise CertManagerError(
            f"TokenRequest for ServiceAccount {namespace}/{service_account}: HTTP {status}: {answer}"
        )
    return str(answer["status"]["token"])


def write_token_kubeconfig(admin_kubeconfig: Path, path: Path, *, token: str, user: str) -> None:
    """Write to PATH (mode 0600) a kubeconfig of the API server of ADMIN_KUBECONFIG (a testbed
    kubeconfig) that authenticates with TOKEN: a controller run with it has exactly the RBAC of
    the token's ServiceAccount, as in a cluster."""
    cluster = json.loads(admin_kubeconfig.read_text())["clusters"][0]  # the testbed writes JSON
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster["name"], "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": cluster["name"],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(config, indent=2) + "\n")
