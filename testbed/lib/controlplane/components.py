"""Each control-plane program's command line, and the ports it listens on (all on 127.0.0.1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import certmanager
from . import traefik as traefik_
from .certs import ClusterPKI
from .kwok import POD_CIDR

SERVICE_CIDR = "10.96.0.0/16"
# Names in state.json's "ports" that each component listens on. kwok's port is its own server
# (healthz, metrics): on loopback too, not the default :10247.
PORTS = {
    "etcd": ("etcd", "etcd-peer"),
    "kube-apiserver": ("kube-apiserver",),
    "kube-controller-manager": ("kube-controller-manager",),
    "kube-scheduler": ("kube-scheduler",),
    "kwok": ("kwok",),
    # Only with `up --traefik`. "traefik" is its own entrypoint (/ping); web and websecure are
    # the entrypoints routes are served on (a Gateway listener's port must be one of them).
    "traefik": ("traefik", "traefik-web", "traefik-websecure"),
    # Only with `up --cert-manager`: its /livez, then its metrics.
    "cert-manager": ("cert-manager", "cert-manager-metrics"),
}
# Entrypoint name -> port name, for `up --traefik`.
TRAEFIK_ENTRYPOINTS = {"web": "traefik-web", "websecure": "traefik-websecure"}
# Started with PATH as the only environment variable (see controlplane.traefik).
CLEAN_ENV = ("traefik", "cert-manager")

# Metadata (verb, user, user agent, object reference, response code) is enough to count API
# requests per object; RequestReceived is omitted so that every request is exactly one event.
# Health probes and Lease renewals (leader election, kwok's node heartbeats) are dropped: they
# are background noise, not requests a role or a test makes.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
  - level: None
    resources:
      - group: coordination.k8s.io
        resources: [leases]
  - level: Metadata
"""


@dataclass(frozen=True)
class Layout:
    """Files the command lines refer to."""

    state: Path
    pki: ClusterPKI
    kwok_stages: Path

    @property
    def audit_policy(self) -> Path:
        return self.state / "audit-policy.yaml"

    @property
    def audit_log(self) -> Path:
        return self.state / "audit.log"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def traefik_token(self) -> Path:
        return self.state / "traefik" / "token"

    @property
    def traefik_access_log(self) -> Path:
        return self.state / "logs" / "traefik-access.log"

    def kubeconfig(self, client: str) -> Path:
        return self.state / ("kubeconfig" if client == "admin" else f"{client}.kubeconfig")


def etcd_url(ports: dict[str, int]) -> str:
    return f"http://127.0.0.1:{ports['etcd']}"


def etcd(files: Layout, ports: dict[str, int]) -> list[str]:
    client, peer = etcd_url(ports), f"http://127.0.0.1:{ports['etcd-peer']}"
    return [
        "--name=testbed",
        f"--data-dir={files.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=testbed={peer}",
        "--initial-cluster-state=new",
        # Throw-away data: durability costs seconds per test on a shared disk.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def kube_apiserver(files: Layout, ports: dict[str, int]) -> list[str]:
    pki = files.pki
    return [
        f"--etcd-servers={etcd_url(ports)}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports['kube-apiserver']}",
        f"--tls-cert-file={pki.cert('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca}",
        "--authorization-mode=Node,RBAC",
        # Default admission plugins (PodSecurity, ServiceAccount, ...) plus NodeRestriction.
        "--enable-admission-plugins=NodeRestriction",
        # Privileged Pods must reach PodSecurity admission rather than fail validation.
        "--allow-privileged=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        # The `kubernetes` Service's Endpoints may not hold a loopback address.
        "--endpoint-reconciler-type=none",
        f"--audit-policy-file={files.audit_policy}",
        f"--audit-log-path={files.audit_log}",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=2",
        "--audit-log-mode=blocking",
        "--profiling=false",
    ]


def kube_controller_manager(files: Layout, ports: dict[str, int]) -> list[str]:
    kubeconfig = files.kubeconfig("controller-manager")
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['kube-controller-manager']}",
        f"--cert-dir={files.state / 'kube-controller-manager'}",
        # All default controllers: service-account tokens, namespace deletion,
        # Deployments/ReplicaSets, garbage collection, root CA publisher, ...
        "--controllers=*",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={files.pki.sa_key}",
        f"--root-ca-file={files.pki.ca}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kube_scheduler(files: Layout, ports: dict[str, int]) -> list[str]:
    kubeconfig = files.kubeconfig("scheduler")
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['kube-scheduler']}",
        f"--cert-dir={files.state / 'kube-scheduler'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok(files: Layout, ports: dict[str, int]) -> list[str]:
    return [
        f"--kubeconfig={files.kubeconfig('kwok')}",
        # kwok's "fast" Stages (from its source, by testbed/build): Nodes Ready with lease
        # heartbeats, Pods Running and Ready at once. An explicit config also keeps a
        # user's ~/.kwok/kwok.yaml out.
        f"--config={files.kwok_stages}",
        # Only the Nodes `up` creates (annotation kwok.x-k8s.io/node=fake).
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--cidr={POD_CIDR}",
        "--node-ip=10.240.0.1",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{ports['kwok']}",
    ]


def traefik(files: Layout, ports: dict[str, int]) -> list[str]:
    return traefik_.arguments(
        api_url=f"https://127.0.0.1:{ports['kube-apiserver']}",
        token_file=files.traefik_token,
        ca_file=files.pki.ca,
        entrypoints={ep: f"127.0.0.1:{ports[port]}" for ep, port in TRAEFIK_ENTRYPOINTS.items()},
        ping_address=f"127.0.0.1:{ports['traefik']}",
        access_log=files.traefik_access_log,
        gateway_class_selector=traefik_.SHARED_SELECTOR,
    )


def cert_manager(files: Layout, ports: dict[str, int]) -> list[str]:
    # As the testbed's admin: the tests run it as the ServiceAccount of roles/cert_manager.
    return certmanager.arguments(
        kubeconfig=files.kubeconfig("admin"),
        healthz_address=f"127.0.0.1:{ports['cert-manager']}",
        metrics_address=f"127.0.0.1:{ports['cert-manager-metrics']}",
    )


ARGV = {
    "etcd": etcd,
    "kube-apiserver": kube_apiserver,
    "kube-controller-manager": kube_controller_manager,
    "kube-scheduler": kube_scheduler,
    "kwok": kwok,
    "traefik": traefik,
    "cert-manager": cert_manager,
}
