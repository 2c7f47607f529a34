"""`testbed up`: start the control plane, one small step after the other.

Every step waits for proof that its component works (etcd /health, kube-apiserver /readyz, the
`default` ServiceAccount, the fake Nodes Ready). Every component gets its ports from
testkit.ports and is started again on new ones when its bind fails. Each PID is recorded in
state.json the moment it starts, so even an interrupted `up` is cleaned up by `down`.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testkit.ports import free_port, is_free
from testkit.process import ManagedProcess, ProcessExited, start_on_free_ports

from . import certmanager, components, traefik
from .api import Api
from .certs import CLIENTS, make_pki, write_kubeconfig
from .kwok import FAKE_NODES, NodeError, create_fake_nodes, nodes_ready
from .state import (
    COMPONENTS,
    OPTIONAL_COMPONENTS,
    OPTIONAL_TOOLS,
    TOOLS,
    log,
    make_state_dir,
    parse_lifetime,
    save_state,
    tool_path,
)

# `timeout` sends SIGKILL this long after the lifetime's SIGTERM.
KILL_AFTER = "30s"


class StartFailed(Exception):
    def __init__(self, component: str, why: str) -> None:
        super().__init__(why)
        self.component = component


@dataclass(frozen=True)
class TraefikOptions:
    """`up --traefik`: APPLY_CRDS applies the Gateway API and traefik.io CRDs first; PORTS fixes
    entrypoint ports ({"traefik-web": 8000, ...}; the others are picked as usual)."""

    apply_crds: bool = False
    ports: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CertManagerOptions:
    """`up --cert-manager`: APPLY_CRDS applies roles/cert_manager's CRD file first."""

    apply_crds: bool = False


@dataclass
class Run:
    """One `up`: where it writes, what it started, and state.json's content."""

    state: Path
    lifetime: str
    files: components.Layout
    binaries: dict[str, Path]
    info: dict[str, Any]
    traefik: TraefikOptions | None = None
    cert_manager: CertManagerOptions | None = None
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    taken_ports: set[int] = field(default_factory=set)
    t0: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def api(self) -> Api:
        return Api(self.info["server"], self.files.pki)

    def launch(self, name: str, ports: dict[str, int]) -> ManagedProcess:
        """Start component NAME on PORTS and record it at once (replacing an earlier attempt)."""
        # The command line may name other components' ports too (kube-apiserver: etcd's).
        all_ports = {**self.info["ports"], **ports}
        argv = [str(self.binaries[name]), *components.ARGV[name](self.files, all_ports)]
        process = ManagedProcess(
            name,
            argv,
            self.state / "logs",
            inherit_env=name not in components.CLEAN_ENV,
            lifetime=self.lifetime,
            kill_after=KILL_AFTER,
            cwd=self.state,
        )
        with self.lock:
            self.processes[name] = process
            self.info["ports"].update(ports)
            self.save()
        return process

    def save(self) -> None:
        order = (*COMPONENTS, *OPTIONAL_COMPONENTS)
        self.info["processes"] = [self.processes[n].record for n in order if n in self.processes]
        save_state(self.state, self.info)

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.t0:.1f} s"


def prepare(
    state: Path,
    lifetime_text: str,
    traefik_options: TraefikOptions | None = None,
    cert_manager_options: CertManagerOptions | None = None,
) -> Run:
    """Binaries (built if missing), a fresh state dir, the PKI and the audit policy."""
    lifetime = parse_lifetime(lifetime_text)
    tools = [*TOOLS, *(OPTIONAL_TOOLS["traefik"] if traefik_options else ())]
    tools += OPTIONAL_TOOLS["cert-manager"] if cert_manager_options else ()
    binaries = {tool: tool_path(tool) for tool in tools}
    make_state_dir(state)
    files = components.Layout(state, make_pki(state / "pki", lifetime), binaries["kwok-stages"])
    files.audit_policy.write_text(components.AUDIT_POLICY)
    now = time.time()
    info: dict[str, Any] = {
        "state_dir": str(state),
        "server": None,
        "kubeconfig": str(files.kubeconfig("admin")),
        "audit_log": str(files.audit_log),
        "ports": {},
        "lifetime": lifetime_text,
        "started_at": now,
        "expires_at": now + lifetime.total_seconds(),
        "processes": [],
        "binaries": {k: str(v) for k, v in binaries.items()},
    }
    return Run(state, lifetime_text, files, binaries, info, traefik_options, cert_manager_options)


def start(
    run: Run,
    name: str,
    what: str,
    ready: Callable[[dict[str, int]], bool] | None,
    timeout: float,
    also_running: list[ManagedProcess] | None = None,
    pick: Callable[[set[int]], int] | None = None,
) -> None:
    """Start component NAME on free ports (PICK: see start_on_free_ports); wait until it listens
    and READY(ports) holds, while ALSO_RUNNING (default: every component started before) keeps
    running."""
    others = list(run.processes.values()) if also_running is None else also_running

    def launch(ports: dict[str, int]) -> ManagedProcess:
        if name == "etcd":
            # A failed attempt may have left a member with other peer URLs behind.
            shutil.rmtree(run.files.etcd_data, ignore_errors=True)
        return run.launch(name, ports)

    try:
        start_on_free_ports(
            launch,
            components.PORTS[name],
            ready=(lambda _process, ports: ready(ports)) if ready else None,
            timeout_s=timeout,
            taken=run.taken_ports,
            also_running=others,
            pick=pick,
        )
    except ProcessExited as e:
        raise StartFailed(e.process.name, f"{e.process.name} exited while waiting for {what}") from e
    except TimeoutError as e:
        raise StartFailed(name, f"timed out after {timeout:.0f} s waiting for {what}") from e
    log(f"{what}: ok ({run.elapsed()})")


def wait(run: Run, component: str, what: str, probe: Callable[[], bool], timeout: float) -> None:
    """Wait for PROBE while every started component keeps running."""
    try:
        run.processes[component].wait_until(
            probe, timeout, what, also_running=list(run.processes.values()), interval_s=0.25
        )
    except ProcessExited as e:
        raise StartFailed(e.process.name, f"{e.process.name} exited while waiting for {what}") from e
    except TimeoutError as e:
        raise StartFailed(component, f"timed out after {timeout:.0f} s waiting for {what}") from e
    log(f"{what}: ok ({run.elapsed()})")


def start_etcd(run: Run) -> None:
    def healthy(ports: dict[str, int]) -> bool:
        with urllib.request.urlopen(f"{components.etcd_url(ports)}/health", timeout=2) as r:  # noqa: S310 (http://127.0.0.1)
            return bool(json.loads(r.read()).get("health") == "true")

    start(run, "etcd", "etcd /health", healthy, timeout=60)


def start_apiserver(run: Run) -> None:
    def ready(ports: dict[str, int]) -> bool:
        run.info["server"] = f"https://127.0.0.1:{ports['kube-apiserver']}"
        return run.api().ok("/readyz")

    start(run, "kube-apiserver", "kube-apiserver /readyz", ready, timeout=120)
    # Only now is the API server's port final.
    for client in CLIENTS:
        write_kubeconfig(run.files.kubeconfig(client), run.info["server"], run.files.pki, client)


def start_controllers(run: Run) -> None:
    """kube-controller-manager, kube-scheduler and kwok, side by side (each until it listens)."""
    names = ("kube-controller-manager", "kube-scheduler", "kwok")
    # Not each other: one of them started again on new ports is no failure of the others.
    before = list(run.processes.values())
    with ThreadPoolExecutor(len(names)) as pool:
        futures = [pool.submit(start, run, name, f"{name} listening", None, 120, before) for name in names]
    for future in futures:
        future.result()


def start_nodes(run: Run) -> None:
    api = run.api()
    try:
        create_fake_nodes(api)
    except NodeError as e:
        raise StartFailed("kube-apiserver", str(e)) from e
    wait(
        run,
        "kube-controller-manager",
        "ServiceAccount default/default (controller-manager)",
        lambda: api.ok("/api/v1/namespaces/default/serviceaccounts/default"),
        timeout=120,
    )
    wait(run, "kwok", f"fake Nodes {', '.join(FAKE_NODES)} Ready (kwok)", lambda: nodes_ready(api), timeout=120)


def start_traefik(run: Run) -> None:
    """Traefik with its Gateway API and CRD providers, as ServiceAccount zerotrust-aks-testbed-traefik
    (Traefik's documented RBAC, a token valid for the lifetime); the CRDs first if asked."""
    options = run.traefik or TraefikOptions()
    try:
        traefik.check_no_system_config()
        for port in options.ports.values():
            if not is_free(port):
                raise traefik.TraefikError(f"port {port} asked for with --traefik-ports is in use on 127.0.0.1")
        lifetime_s = int(parse_lifetime(run.lifetime).total_seconds())
        traefik.grant_access(run.api(), run.files.traefik_token, expiration_s=lifetime_s + 3600)
        if options.apply_crds:
            traefik.apply_crds(run.binaries["kubectl"], run.files.kubeconfig("admin"), run.binaries["traefik-crds"])
            log(f"Gateway API and traefik.io CRDs applied and Established ({run.elapsed()})")
    except (traefik.TraefikError, OSError) as e:
        raise StartFailed("kube-apiserver", f"preparing Traefik: {e}") from e
    names = components.PORTS["traefik"]
    calls = itertools.count()

    def pick(taken: set[int]) -> int:
        # start_on_free_ports asks once per port name, in order, for every attempt.
        name = names[next(calls) % len(names)]
        return options.ports.get(name) or free_port(exclude=taken)

    start(
        run,
        "traefik",
        "Traefik /ping",
        lambda ports: traefik.ping(f"127.0.0.1:{ports['traefik']}"),
        timeout=60,
        pick=pick,
    )


def start_cert_manager(run: Run) -> None:
    """cert-manager's controllers (testbed/certmanager) as the testbed's admin; the CRDs first if
    asked (without them it waits for whoever applies them, e.g. the collection)."""
    if run.cert_manager and run.cert_manager.apply_crds:
        try:
            certmanager.apply_crds(run.binaries["kubectl"], run.files.kubeconfig("admin"))
        except (certmanager.CertManagerError, OSError) as e:
            raise StartFailed("kube-apiserver", f"preparing cert-manager: {e}") from e
        log(f"cert-manager CRDs applied and Established ({run.elapsed()})")
    start(
        run,
        "cert-manager",
        "cert-manager /livez",
        lambda ports: certmanager.live(f"127.0.0.1:{ports['cert-manager']}"),
        timeout=60,
    )


STEPS = (start_etcd, start_apiserver, start_controllers, start_nodes)


def up(run: Run) -> None:
    """Run every step; raises StartFailed (the caller stops what started)."""
    log(f"starting the testbed in {run.state} (lifetime {run.lifetime})")
    optional = (*((start_traefik,) if run.traefik else ()), *((start_cert_manager,) if run.cert_manager else ()))
    for step in (*STEPS, *optional):
        step(run)
    with run.lock:
        run.save()
    log(f"up in {run.elapsed()}")
