"""A cluster's pod network, made of the loopback device of a private network namespace.

The testbed has no pods that run and no network: kwok hands out Pod IPs (10.244.0.0/24), the
API server hands out ClusterIPs (10.96.0.0/16), and the endpointslice controller writes the Pod
IPs into each Service's EndpointSlices. The gateway suite runs in a network namespace of its own
(``tests/gateway/run``: ``unshare --net --mount --pid``) whose only device is ``lo``; there it
makes those addresses real:

- :func:`add_local_addresses` puts every Pod IP and ClusterIP on ``lo`` (``ip addr add``), so the
  harness can run a program at a Pod IP (oauth2-proxy on ``<pod IP>:4180``, the stand-in apps on
  ``<pod IP>:8080``, Traefik on ``<pod IP>:8443``) exactly where the EndpointSlices say it is;
- :class:`ServiceProxy` is kube-proxy: it accepts on ``ClusterIP:port`` and forwards each
  connection to one endpoint ``Pod IP:targetPort`` (round robin), as the EndpointSlices say;
- :class:`HostsFile` is cluster DNS: ``<svc>.<ns>.svc.cluster.local`` -> ClusterIP (and the
  site's host names -> the edge's address), in a private file bind-mounted over /etc/hosts in
  the private mount namespace. Go programs built with CGO_ENABLED=0 (Traefik, oauth2-proxy) and
  Python read /etc/hosts first (nsswitch ``files``).

Nothing here is reachable from outside the namespace; :func:`check_private_namespace` refuses to
run anywhere else (the addresses and the bind mount would otherwise change the machine).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

ETC_HOSTS = Path("/etc/hosts")
# Kept in the private hosts file so that programs resolving "localhost" still work.
LOCALHOST_LINES = ("127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback")


class NotInPrivateNamespace(RuntimeError):
    """The process does not run in a private network + mount namespace (tests/gateway/run)."""


def network_devices(dev_file: Path = Path("/proc/self/net/dev")) -> list[str]:
    """The network devices of this process's network namespace."""
    lines = dev_file.read_text().splitlines()[2:]
    return [line.split(":", 1)[0].strip() for line in lines]


def root_mount_is_shared(mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """``/`` propagates mounts to a peer group (a bind mount would show up outside)."""
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            optional = fields[6 : fields.index("-")]
            return any(tag.startswith("shared:") for tag in optional)
    return False


def check_private_namespace() -> None:
    """Raise unless this network namespace has nothing but ``lo`` (up) and ``/`` is not shared."""
    devices = network_devices()
    if devices != ["lo"]:
        raise NotInPrivateNamespace(
            f"this network namespace has devices {devices}: the gateway suite only runs in a private "
            "one with nothing but lo (tests/gateway/run)"
        )
    if root_mount_is_shared():
        raise NotInPrivateNamespace(
            "/ is a shared mount: a bind mount over /etc/hosts would reach the host (tests/gateway/run "
            "makes the mount namespace private)"
        )
    with socket.create_server(("127.0.0.1", 0)):
        pass  # lo is up


def local_addresses() -> set[str]:
    """The IPv4 addresses on ``lo``."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True)
    return {line.split()[3].split("/")[0] for line in out.stdout.splitlines()}


def add_local_addresses(addresses: Iterable[str]) -> list[str]:
    """Put each address on ``lo`` (a /32) unless it is there; the ones added."""
    check_private_namespace()
    present = local_addresses()
    added = []
    for address in sorted(set(addresses) - present):
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True, capture_output=True)
        added.append(address)
    return added


class HostsFile:
    """A private /etc/hosts: NAMES (name -> address) plus localhost, bind-mounted over /etc/hosts.

    ``install()`` mounts it once; later ``update()`` calls rewrite the same file (the mount shows
    the new content; Go's resolver rereads /etc/hosts when it changed, every few seconds at most).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: dict[str, str] = {}
        self.installed = False

    def render(self) -> str:
        by_address: dict[str, list[str]] = {}
        for name, address in sorted(self.names.items()):
            by_address.setdefault(address, []).append(name)
        lines = [*LOCALHOST_LINES, *(f"{address}\t{' '.join(names)}" for address, names in sorted(by_address.items()))]
        return "# tests/gateway: cluster DNS of the private namespace\n" + "\n".join(lines) + "\n"

    def update(self, names: Mapping[str, str]) -> None:
        self.names.update(names)
        self.path.write_text(self.render())
        self.path.chmod(0o644)

    def install(self) -> None:
        if self.installed:
            return
        check_private_namespace()
        self.update({})
        subprocess.run(["mount", "--bind", str(self.path), str(ETC_HOSTS)], check=True, capture_output=True)
        self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            subprocess.run(["umount", str(ETC_HOSTS)], check=False, capture_output=True)
            self.installed = False


def cluster_dns_names(service: str, namespace: str, domain: str = "cluster.local") -> list[str]:
    """The names a Service has in cluster DNS (as seen from a Pod in another namespace)."""
    return [f"{service}.{namespace}.svc.{domain}", f"{service}.{namespace}.svc", f"{service}.{namespace}"]


class _Forwarder(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], endpoints: Sequence[tuple[str, int]], name: str) -> None:
        self.name = name
        self.endpoints = list(endpoints)
        self._next = itertools.cycle(range(len(self.endpoints)))
        self._lock = threading.Lock()
        self.connections = 0
        self.bytes_in = 0  # from clients to the endpoints
        self.failures: list[str] = []
        super().__init__(listen, _ForwardHandler)

    def count_in(self, size: int) -> None:
        with self._lock:
            self.bytes_in += size

    def pick(self) -> tuple[str, int]:
        with self._lock:
            self.connections += 1
            return self.endpoints[next(self._next)]


class _ForwardHandler(socketserver.BaseRequestHandler):
    server: _Forwarder

    def handle(self) -> None:
        target = self.server.pick()
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError as e:
            self.server.failures.append(f"{target}: {e}")
            return
        upstream.settimeout(None)
        with upstream:
            back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            back.start()
            _pump(self.request, upstream, self.server.count_in)
            back.join(60)


def _pump(source: socket.socket, sink: socket.socket, count: Callable[[int], None] | None = None) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
            if count:
                count(len(data))
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class ServiceProxy:
    """kube-proxy: ``ClusterIP:port`` -> one of the endpoints, one connection at a time (round robin)."""

    def __init__(self) -> None:
        self.forwarders: dict[tuple[str, int], _Forwarder] = {}
        self._threads: list[threading.Thread] = []

    def forward(self, listen: tuple[str, int], endpoints: Sequence[tuple[str, int]], name: str) -> None:
        if not endpoints:
            raise ValueError(f"{name}: no endpoints to forward {listen[0]}:{listen[1]} to")
        forwarder = _Forwarder(listen, endpoints, name)
        self.forwarders[listen] = forwarder
        thread = threading.Thread(target=forwarder.serve_forever, name=f"kube-proxy {name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def connections(self, listen: tuple[str, int]) -> int:
        return self.forwarders[listen].connections

    def bytes_in(self, listen: tuple[str, int]) -> int:
        """Bytes clients sent through ``listen`` so far (connections are kept alive and reused)."""
        return self.forwarders[listen].bytes_in

    def stop(self) -> None:
        for forwarder in self.forwarders.values():
            forwarder.shutdown()
            forwarder.server_close()
        for thread in self._threads:
            thread.join(5)
