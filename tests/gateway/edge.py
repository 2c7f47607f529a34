"""The gateway-api edge running for real: Traefik, oauth2-proxy, the IdP and stand-in apps.

From the objects the stack applied to the suite's private testbed (:mod:`cluster`), inside the
suite's private network namespace (:mod:`podnet`):

========================  ====================================================================
what                      where, configured from
========================  ====================================================================
Traefik (real binary)     one process per Pod of the Traefik Deployment, entrypoints on the
                          Pod IP; the Deployment's args plus the connection to the API server
                          (:func:`traefik_invocation`), with a token of the Deployment's own
                          ServiceAccount — so the ClusterRole the collection grants is what it
                          runs with; it reads the Gateway, HTTPRoutes, ReferenceGrants and
                          Middlewares from the API server and routes to EndpointSlice addresses
oauth2-proxy (real)       one process per Pod of its Deployment on ``<Pod IP>:4180``, the
                          Deployment's args and Secrets (``harness.oauth2_proxy_invocation``)
the IdP                   testbed/idp on 127.0.0.1, the users of the test
the apps                  ``harness.EchoUpstream`` on ``<Pod IP>:<targetPort>`` of every other
                          Service's endpoints (colors-web, colors-api, your apps)
kube-proxy                :class:`podnet.ServiceProxy`: every ClusterIP:port -> endpoints
cluster DNS               :class:`podnet.HostsFile`: Service names -> ClusterIPs; the site's
                          host names -> the address of Traefik's Service (as DNS would point
                          them at its load balancer), ports 443 and 80
========================  ====================================================================

Traffic flows browser -> Traefik Service (ClusterIP:443) -> Traefik (Pod IP:8443) -> forwardAuth
to ``oauth2-proxy.<ns>.svc.cluster.local:4180`` (the ClusterIP) -> oauth2-proxy (Pod IP:4180), and
Traefik -> app (Pod IP:8080): nothing is on 127.0.0.1 but the IdP and the API server.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import typing as t
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from authflow import harness
from controlplane import traefik
from kubernetes import client
from testkit.pki import write_private
from testkit.process import ManagedProcess

from .cluster import ClusterState, Workload, secret_bytes, service_account_token
from .podnet import HostsFile, ServiceProxy, add_local_addresses, cluster_dns_names

TRAEFIK_IMAGE = "docker.io/traefik"
OAUTH2_PROXY_PORT = 4180
# Traefik's own entrypoint (ping) on the Pod IP when the Deployment defines none.
DEFAULT_PING_PORT = 9000


@dataclass(frozen=True)
class TraefikInvocation:
    argv: list[str]
    pod_ip: str
    entrypoints: dict[str, str]  # name -> address it listens on
    ping_address: str
    overrides: list[harness.Override]


def _entrypoint_address(arg: str) -> tuple[str, int] | None:
    """(name, port) of ``--entryPoints.<name>.address=[host]:<port>[/tcp]`` (Traefik's flags are
    case-insensitive), else None."""
    name, sep, value = arg.partition("=")
    parts = name.lower().removeprefix("--").split(".")
    if sep and len(parts) == 3 and parts[0] == "entrypoints" and parts[2] == "address":
        return parts[1], int(value.rsplit(":", 1)[1].split("/")[0])
    return None


def deployed_entrypoints(args: Sequence[str]) -> dict[str, int]:
    """The entrypoints of the Deployment's args: name -> port."""
    return dict(found for found in map(_entrypoint_address, args) if found)


def traefik_invocation(
    workload: Workload,
    pod_ip: str,
    *,
    binary: str,
    api_url: str,
    token_file: Path,
    ca_file: Path,
    access_log: Path,
    container: str | None = None,
) -> TraefikInvocation:
    """Traefik's command line for one Pod of its Deployment: the container's args, with

    - every entrypoint bound to the Pod's IP instead of all addresses (the namespace is one
      network for every Pod; two replicas would otherwise fight over the port), same ports;
    - the API server given by flags (endpoint, ServiceAccount token, CA;
      ``controlplane.traefik.arguments``) instead of the in-cluster config a Pod has;
    - /ping on the Pod IP (the readiness probe's endpoint) and an access log file.
    """
    spec = workload.container(container)
    if spec.get("command"):
        raise harness.UnsupportedObject(f"Traefik container sets command {spec['command']}; expected the entrypoint")
    args = [str(a) for a in spec.get("args") or []]
    ports = deployed_entrypoints(args)
    deployed_ping = ports.pop(traefik.PING_ENTRYPOINT, None)
    ping_address = f"{pod_ip}:{deployed_ping or DEFAULT_PING_PORT}"
    entrypoints = {name: f"{pod_ip}:{port}" for name, port in ports.items()}
    flags = traefik.arguments(
        api_url=api_url,
        token_file=token_file,
        ca_file=ca_file,
        entrypoints=entrypoints,
        ping_address=ping_address,
        access_log=access_log,
        status_ip=None,
        extra=[a for a in args if _entrypoint_address(a) is None],
    )
    argv = [str(binary), *flags]
    why = "the Pod's IP: every Pod shares the namespace's network"
    overrides = [harness.Override(f"--entrypoints.{n}.address", f":{ports[n]}", a, why) for n, a in entrypoints.items()]
    overrides += [
        harness.Override(
            f"--entrypoints.{traefik.PING_ENTRYPOINT}.address",
            f":{deployed_ping}" if deployed_ping else None,
            ping_address,
            why,
        ),
        harness.Override("--providers.*.endpoint/token/certauthfilepath", None, api_url, "no in-cluster config"),
    ]
    return TraefikInvocation(argv, pod_ip, entrypoints, ping_address, overrides)


@dataclass
class GatewayEdge:
    """The running edge. Site names resolve to ``address`` (Traefik's Service), ports 443/80."""

    host: str
    hosts: list[str]
    address: str
    ca_file: Path
    certificate_pem: bytes
    issuer_url: str
    state: ClusterState
    oauth2_proxy: list[harness.Invocation]
    traefik: list[TraefikInvocation]
    upstreams: dict[str, list[harness.EchoUpstream]]  # by service_key(), one per endpoint
    users: dict[str, harness.IdpUser]
    proxy: ServiceProxy
    hosts_file: HostsFile
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    https_port: int = 443
    http_port: int = 80

    @property
    def user(self) -> harness.IdpUser:
        return next(iter(self.users.values()))

    def browser(self) -> harness.ScriptedBrowser:
        return harness.ScriptedBrowser(self.hosts, self.https_port, self.ca_file, edge_address=self.address)

    def requests_to(self, key: str) -> list[harness.RecordedRequest]:
        """Every request the stand-ins of Service ``key`` (service_key()) received."""
        return [r for upstream in self.upstreams.get(key, []) for r in upstream.requests]

    def check_running(self) -> None:
        for process in self.processes:
            process.check_running()

    def served_certificate(self, host: str | None = None) -> bytes:
        """The DER certificate Traefik presents for HOST (SNI), unverified."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((self.address, self.https_port), timeout=5) as sock,
            context.wrap_socket(sock, server_hostname=host or self.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def _client_credentials(objects: harness.AppliedObjects) -> tuple[str, str]:
    values = []
    for env_name in ("OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET"):
        container = harness.objects.container_of(objects.deployment, "oauth2-proxy")
        ref = next(e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == env_name)
        values.append(harness.secret_value(objects.secrets, ref["name"], ref["key"]))
    return values[0], values[1]


def _trust_anchor(secret: Mapping[str, t.Any]) -> bytes:
    """What a browser must trust for a TLS Secret: its CA (cert-manager's ca.crt) when it has
    one, else the certificate itself (the tls role's self-signed one)."""
    return secret_bytes(secret, "ca.crt") or secret_bytes(secret, "tls.crt")


def _probe(edge_address: str, port: int, host: str, path: str, ca_file: Path, status: int) -> bool:
    browser = harness.ScriptedBrowser([host], port, ca_file, edge_address=edge_address)
    return browser.get(path).status_code == status


@contextlib.contextmanager
def gateway_edge(
    state: ClusterState,
    objects: harness.AppliedObjects,
    api_client: client.ApiClient,
    *,
    binaries: harness.Binaries,
    traefik_binary: str,
    api_url: str,
    api_ca: Path,
    work_dir: Path,
    host: str,
    users: Sequence[harness.IdpUser],
    idp_settings: harness.IdpSettings | None = None,
    lifetime_s: int = 900,
    ready_paths: Sequence[tuple[str, str, int]] = (),
) -> Iterator[GatewayEdge]:
    """Start the edge for STATE (see the module docstring); stop everything on exit.

    HOST is the main site host. READY_PATHS: (host, path, status) that must answer so through
    Traefik before the edge counts as up (Traefik loads its configuration asynchronously).
    """
    log_dir = work_dir / "logs"
    processes: list[ManagedProcess] = []
    upstreams: dict[str, list[harness.EchoUpstream]] = {}
    proxy = ServiceProxy()
    hosts_file = HostsFile(work_dir / "hosts")
    deployment_meta = objects.deployment["metadata"]
    oauth2 = state.workload(deployment_meta["namespace"], deployment_meta["name"])
    traefiks = state.workloads_with_image(TRAEFIK_IMAGE)
    if len(traefiks) != 1:
        raise harness.UnsupportedObject(
            f"expected one Deployment of {TRAEFIK_IMAGE}, found {[w.name for w in traefiks]}"
        )
    (traefik_workload,) = traefiks
    (edge_service,) = state.services_selecting(traefik_workload)
    try:
        # ---- the pod network: addresses, kube-proxy, cluster DNS ----------------------------
        add_local_addresses(
            [s.cluster_ip for s in state.services if s.cluster_ip not in ("", "None")]
            + [ip for s in state.services for p in s.ports for ip, _port in p.endpoints]
        )
        names: dict[str, str] = {}
        for service in state.services:
            if service.cluster_ip in ("", "None"):
                continue
            names.update(dict.fromkeys(cluster_dns_names(service.name, service.namespace), service.cluster_ip))
            for port in service.ports:
                if port.endpoints:
                    proxy.forward(
                        (service.cluster_ip, port.port), port.endpoints, f"{service.namespace}/{service.name}"
                    )
        hosts = list(dict.fromkeys([host, *state.hostnames]))
        names.update(dict.fromkeys(hosts, edge_service.cluster_ip))
        hosts_file.update(names)
        hosts_file.install()

        # ---- the IdP -----------------------------------------------------------------------
        client_id, client_secret = _client_credentials(objects)
        issuer_url = harness.start_idp(
            binaries.idp,
            work_dir,
            log_dir,
            client_id=client_id,
            client_secret=client_secret,
            users=users,
            settings=idp_settings,
            lifetime_s=lifetime_s,
            processes=processes,
        )

        # ---- oauth2-proxy, one per Pod -----------------------------------------------------
        invocations = []
        for index, pod_ip in enumerate(oauth2.pod_ips):
            invocation = harness.oauth2_proxy_invocation(
                objects.deployment, objects.secrets, binary=binaries.oauth2_proxy,
                http_address=f"{pod_ip}:{OAUTH2_PROXY_PORT}", issuer_url=issuer_url,
            )  # fmt: skip
            process = ManagedProcess(
                f"oauth2-proxy-{index}", invocation.argv, log_dir, env=invocation.env, inherit_env=False,
                lifetime=lifetime_s,
            )  # fmt: skip
            processes.append(process)
            invocations.append(invocation)
        for index, pod_ip in enumerate(oauth2.pod_ips):
            ping = f"http://{pod_ip}:{OAUTH2_PROXY_PORT}/ping"
            processes[1 + index].wait_until(functools.partial(harness.http_ok, ping), what="answering /ping")

        # ---- the apps: a stand-in at every other endpoint ----------------------------------
        running_at = {(ip, OAUTH2_PROXY_PORT) for ip in oauth2.pod_ips}
        edge_pods = set(traefik_workload.pod_ips)
        for service in state.services:
            for port in service.ports:
                for ip, target in port.endpoints:
                    if ip in edge_pods or (ip, target) in running_at:
                        continue
                    upstream = harness.EchoUpstream(service.name, host=ip, port=target).start()
                    upstreams.setdefault(service.key(port.port), []).append(upstream)
                    running_at.add((ip, target))

        # ---- Traefik, one per Pod ----------------------------------------------------------
        account = traefik_workload.deployment["spec"]["template"]["spec"].get("serviceAccountName", "default")
        token_file = write_private(
            work_dir / "traefik-token",
            service_account_token(
                api_client, traefik_workload.namespace, account, seconds=max(lifetime_s, 600) + 600
            ).encode(),
        )
        traefik_invocations: list[TraefikInvocation] = []
        for index, pod_ip in enumerate(traefik_workload.pod_ips):
            started = traefik_invocation(
                traefik_workload, pod_ip, binary=traefik_binary, api_url=api_url, token_file=token_file,
                ca_file=api_ca, access_log=log_dir / f"traefik-{index}-access.log",
            )  # fmt: skip
            traefik.check_no_system_config()
            (work_dir / f"traefik-{index}.d").mkdir(exist_ok=True)
            process = ManagedProcess(
                f"traefik-{index}", started.argv, log_dir, inherit_env=False, lifetime=lifetime_s,
                cwd=work_dir / f"traefik-{index}.d",
            )  # fmt: skip
            processes.append(process)
            traefik_invocations.append(started)
            process.wait_until(functools.partial(traefik.ping, started.ping_address), 60, "answering /ping")

        listener_secrets = state.listener_certificates()
        if not listener_secrets:
            raise harness.UnsupportedObject("no HTTPS listener with a certificate")
        ca_file = work_dir / "trusted.pem"
        ca_file.write_bytes(b"".join(_trust_anchor(s) for s in listener_secrets))
        edge = GatewayEdge(
            host=host,
            hosts=hosts,
            address=edge_service.cluster_ip,
            ca_file=ca_file,
            certificate_pem=secret_bytes(listener_secrets[0], "tls.crt"),
            issuer_url=issuer_url,
            state=state,
            oauth2_proxy=invocations,
            traefik=traefik_invocations,
            upstreams=upstreams,
            users={u.username: u for u in users},
            proxy=proxy,
            hosts_file=hosts_file,
            log_dir=log_dir,
            processes=processes,
        )
        # Traefik builds its routers from what its informers saw; wait until every route serves.
        last_traefik = processes[-1]
        for probe_host, path, status in ready_paths:
            last_traefik.wait_until(
                functools.partial(_probe, edge.address, edge.https_port, probe_host, path, ca_file, status),
                60,
                f"routing https://{probe_host}{path} (expecting {status})",
                also_running=processes,
                interval_s=0.5,
            )
        yield edge
    finally:
        for process in reversed(processes):
            process.stop()
        for group in upstreams.values():
            for upstream in group:
                upstream.stop()
        proxy.stop()
        hosts_file.uninstall()


def api_url_and_ca(kubeconfig: Path, work_dir: Path) -> tuple[str, Path]:
    """The API server URL of KUBECONFIG and its CA, written to a file (Traefik wants a path)."""
    import base64

    import yaml

    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = write_private(work_dir / "api-ca.crt", base64.b64decode(cluster["certificate-authority-data"]))
    return str(cluster["server"]), ca


def rd_of(location: str) -> str:
    """The redirect target oauth2-proxy keeps in the ``state`` of its authorize URL (after the nonce)."""
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["state"][0]
    return state.split(":", 1)[1]


def no_proxy_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session
