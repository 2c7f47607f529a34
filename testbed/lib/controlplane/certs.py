"""The cluster's certificates (one throw-away CA) and the kubeconfigs made from them."""

from __future__ import annotations

import base64
import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from testkit.pki import CertificateAuthority, write_key_pair

from .state import CLUSTER_NAME

API_SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
# Client certificates: file name -> (user, group). Kubernetes reads CN as the user, O as a group.
CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("zerotrust-aks-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    # kwok writes Node and Pod status of every fake node: it is cluster admin here.
    "kwok": ("kwok", "system:masters"),
}


@dataclass(frozen=True)
class ClusterPKI:
    """Paths of everything `make_pki` wrote into one folder."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def make_pki(directory: Path, lifetime: datetime.timedelta) -> ClusterPKI:
    """CA, API server certificate, one client certificate per CLIENTS entry, ServiceAccount keys."""
    pki = ClusterPKI(directory)
    # Outlive the processes by a day: nothing here must expire during a run.
    ca = CertificateAuthority(f"{CLUSTER_NAME}-ca", valid_for=lifetime + datetime.timedelta(days=1))
    ca.write(pki.ca, pki.key("ca"))
    ca.issue_server("kube-apiserver", dns=API_SERVER_NAMES).write(pki.cert("apiserver"), pki.key("apiserver"))
    for name, (user, group) in CLIENTS.items():
        ca.issue_client(user, organizations=[group] if group else []).write(pki.cert(name), pki.key(name))
    # RSA: the signing key type every ServiceAccount token consumer supports.
    write_key_pair(pki.sa_key, pki.sa_pub, algorithm="rsa")
    return pki


def write_kubeconfig(path: Path, server: str, pki: ClusterPKI, client: str) -> None:
    """A kubeconfig for CLIENT (a CLIENTS name) of the API server at SERVER."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    user = CLIENTS[client][0]
    # JSON is YAML: no YAML library needed.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": b64(pki.ca)}}],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(pki.cert(client)), "client-key-data": b64(pki.key(client))},
            }
        ],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
