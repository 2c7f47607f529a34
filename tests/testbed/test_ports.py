"""Ports: the testbed takes its ports from below the kernel's ephemeral range, and a server
whose port was taken before it could bind it is started again on a new one.

The bug this guards against: every port was picked up front by binding port 0, i.e. from the
ephemeral range, and kube-apiserver's own outgoing connections to etcd (local ports from the
same range) took kube-controller-manager's port before it could bind it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from testkit.ports import PortError, ephemeral_range, free_port, is_free, port_pool
from testkit.process import ManagedProcess, ProcessExited, start_on_free_ports

from .conftest import TESTBED, LocalTestbed

# 20 up/down cycles take ~4 min here (see test_private_testbed_comes_up_again_and_again);
# ZEROTRUST_AKS_TESTBED_PORT_CYCLES lowers that for a quick run.
CYCLES = int(os.environ.get("ZEROTRUST_AKS_TESTBED_PORT_CYCLES", "20"))


def outside(port: int, ephemeral: tuple[int, int]) -> bool:
    return not ephemeral[0] <= port <= ephemeral[1]


@pytest.mark.parametrize(
    ("ephemeral", "pool"),
    [
        ((32768, 60999), range(20000, 32768)),  # Linux's default: below it
        ((15000, 25000), range(25001, 65536)),  # nothing much below 20000..: above it
        ((10000, 65535), range(1024, 10000)),  # only below it, under 20000
    ],
)
def test_pool_lies_outside_the_ephemeral_range(ephemeral: tuple[int, int], pool: range) -> None:
    assert port_pool(ephemeral) == pool


def test_no_pool_when_the_ephemeral_range_covers_every_port() -> None:
    with pytest.raises(PortError, match="outside the ephemeral range 1024-65535"):
        port_pool((1024, 65535))


def test_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    custom = tmp_path / "ip_local_port_range"
    custom.write_text("40000\t50000\n")
    assert ephemeral_range(custom) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)


def test_free_port_is_outside_the_ephemeral_range_and_free() -> None:
    ephemeral = ephemeral_range()
    ports = [free_port() for _pick in range(200)]
    assert all(outside(p, ephemeral) and p >= 1024 for p in ports)
    assert len(set(ports)) > 150  # randomised, not a counter every caller shares
    busy = socket.socket()
    busy.bind(("127.0.0.1", ports[0]))
    with busy:
        assert not is_free(ports[0])
        assert ports[0] not in {free_port() for _pick in range(200)}


def http_server(log_dir: Path) -> tuple[list[dict[str, int]], Callable[[dict[str, int]], ManagedProcess]]:
    """A start function for start_on_free_ports (Python's http.server), and its call list."""
    calls: list[dict[str, int]] = []

    def start(ports: dict[str, int]) -> ManagedProcess:
        calls.append(ports)
        argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(ports["http"])]
        return ManagedProcess("http", argv, log_dir, lifetime=60)

    return calls, start


def test_server_is_started_again_on_a_new_port_when_its_port_was_taken(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", free_port()))
    busy.listen()
    taken_port = busy.getsockname()[1]
    handed_out = [taken_port]  # the first pick is a port someone else took meanwhile
    calls, start = http_server(tmp_path)
    with busy:
        process, ports = start_on_free_ports(
            start,
            ["http"],
            pick=lambda taken: handed_out.pop() if handed_out else free_port(exclude=taken),
        )
        with process:
            assert calls[0]["http"] == taken_port
            assert len(calls) == 2
            assert ports == calls[1] and ports["http"] != taken_port
            assert process.listens_on(ports["http"])
            assert not process.listens_on(taken_port)
            log = (tmp_path / "http.log").read_text()
            assert "Address already in use" in log  # the first attempt's, kept in the log
            assert f"port {ports['http']}" in log


def test_server_failing_for_another_reason_is_not_started_again(tmp_path: Path) -> None:
    calls: list[dict[str, int]] = []

    def start(ports: dict[str, int]) -> ManagedProcess:
        calls.append(ports)
        return ManagedProcess("broken", [sys.executable, "-c", "raise SystemExit('bad flag')"], tmp_path)

    with pytest.raises(ProcessExited, match="broken exited with 1"):
        start_on_free_ports(start, ["http"], timeout_s=10)
    assert len(calls) == 1


def test_server_whose_port_stays_taken_gives_up_after_its_attempts(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", free_port()))
    busy.listen()
    calls, start = http_server(tmp_path)
    with busy, pytest.raises(ProcessExited, match="Address already in use"):
        start_on_free_ports(start, ["http"], pick=lambda _taken: busy.getsockname()[1], attempts=3)
    assert len(calls) == 3


def test_private_testbed_comes_up_again_and_again(testbed: LocalTestbed, tmp_path: Path) -> None:
    """CYCLES up/down of a second testbed next to the session's running one: every `up`
    succeeds, and every port of both is outside the ephemeral range."""
    ephemeral = ephemeral_range()
    session_ports = set(testbed.info["ports"].values())
    assert all(outside(p, ephemeral) for p in session_ports), testbed.info["ports"]
    state = tmp_path / "cycling"
    env = {**os.environ, "ZEROTRUST_AKS_TESTBED_DIR": str(state)}
    durations: list[tuple[float, float]] = []
    for cycle in range(CYCLES):
        started = time.monotonic()
        up = subprocess.run(
            [str(TESTBED), "up", "--lifetime", "10m"], env=env, capture_output=True, text=True, check=False
        )
        up_s = time.monotonic() - started
        try:
            assert up.returncode == 0, f"cycle {cycle}: up failed\n{up.stderr}"
            info = json.loads((state / "state.json").read_text())
            ports = info["ports"]
            assert set(ports) == {"etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager"} | {
                "kube-scheduler",
                "kwok",
            }
            assert all(outside(p, ephemeral) for p in ports.values()), ports
            assert not set(ports.values()) & session_ports
            assert subprocess.run([str(TESTBED), "status"], env=env, capture_output=True, check=False).returncode == 0
        finally:
            started_down = time.monotonic()
            subprocess.run([str(TESTBED), "down"], env=env, capture_output=True, check=True)
            durations.append((up_s, time.monotonic() - started_down))
        assert not state.exists()
    # The session's testbed ran on undisturbed next to it.
    assert subprocess.run([str(TESTBED), "status"], capture_output=True, check=False).returncode == 0
    ups, downs = [d[0] for d in durations], [d[1] for d in durations]
    print(
        f"\n{CYCLES} cycles: up {min(ups):.1f}-{max(ups):.1f} s (mean {sum(ups) / len(ups):.1f}), "
        f"down {min(downs):.1f}-{max(downs):.1f} s, total {sum(ups) + sum(downs):.0f} s"
    )
