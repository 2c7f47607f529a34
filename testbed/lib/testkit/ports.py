"""Free TCP ports on 127.0.0.1 that the kernel will not hand to an outgoing connection.

Binding port 0 takes a port from the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``): the same range every outgoing connection's local
port comes from. A port picked that way and bound a moment later by another program can be
taken in between by any connection on the machine (kube-apiserver's own connections to etcd
took kube-controller-manager's port). Ports below the ephemeral range are never handed out
implicitly, so :func:`free_port` picks from there.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Above the registered ports most local services use (10250 kubelet, 10257/10259 controller-manager
# and scheduler, ...); the pool ends where the ephemeral range starts.
POOL_START = 20000
# Linux's default ephemeral range, used when the file cannot be read.
DEFAULT_EPHEMERAL = (32768, 60999)
# Smallest pool worth picking from; below that the ranges are laid out unusually and we say so.
MIN_POOL = 1000


class PortError(RuntimeError):
    pass


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range (inclusive), or Linux's default when unreadable."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def port_pool(ephemeral: tuple[int, int] | None = None) -> range:
    """The ports :func:`free_port` picks from: below the ephemeral range (20000 up to it), else
    above it, else whatever unprivileged ports below it there are."""
    low, high = ephemeral or ephemeral_range()
    candidates = [range(POOL_START, low), range(high + 1, 65536), range(1024, low)]
    for pool in candidates:
        if len(pool) >= MIN_POOL:
            return pool
    raise PortError(f"no pool of {MIN_POOL} ports outside the ephemeral range {low}-{high}")


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing is bound to HOST:PORT (nor to the wildcard address on PORT) right now.

    No SO_REUSEADDR: a port with connections in TIME_WAIT counts as taken, which only makes the
    choice more careful.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(
    host: str = "127.0.0.1",
    *,
    exclude: set[int] | frozenset[int] = frozenset(),
    ephemeral: tuple[int, int] | None = None,
    attempts: int = 200,
) -> int:
    """A random port outside the ephemeral range that was free a moment ago.

    Another program may still take it before the caller's program binds it: callers that start
    a server retry with a new port when its bind fails (see ``testkit.process``). EXCLUDE holds
    ports already given to other components of the same run.
    """
    pool = port_pool(ephemeral)
    for _attempt in range(attempts):
        port = random.choice(pool)  # noqa: S311 - spreading choices, not cryptography
        if port not in exclude and is_free(port, host):
            return port
    raise PortError(f"no free port on {host} in {pool.start}-{pool.stop - 1} after {attempts} tries")
