"""Programs started in their own session under coreutils ``timeout``, logging to a file, and
stopped by PID — only ever the processes we started.

- :class:`ManagedProcess` starts one; it can be stopped from this Python process (``stop()``)
  or, through its :attr:`~ManagedProcess.record`, from another one (:func:`stop_recorded`).
- :func:`start_on_free_ports` starts a server on ports from :func:`testkit.ports.free_port` and
  starts it again on new ports when its bind fails ("address already in use").

Lifetime: ``timeout --signal=TERM --kill-after=KILL_AFTER LIFETIME PROGRAM ...`` sends SIGTERM
after LIFETIME and SIGKILL KILL_AFTER later, even when nobody calls ``stop``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .ports import free_port

T = TypeVar("T")
ADDRESS_IN_USE = "address already in use"  # Go's and Python's message (Python capitalises it)


class ProcessExited(RuntimeError):
    """The program exited while it should have been running (``.process`` says which)."""

    def __init__(self, message: str, process: ManagedProcess) -> None:
        super().__init__(message)
        self.process = process


# --------------------------------------------------------------------------- /proc


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """PID exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def is_ours(pid: int, binary: str) -> bool:
    """PID still runs the program we started (BINARY is on its command line): no PID-reuse accidents."""
    return alive(pid) and binary in cmdline(pid)


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found


def session_members(leader: int) -> list[int]:
    """LEADER and its descendants that are still in the session LEADER started."""
    members = []
    for pid in [leader, *descendants(leader)]:
        fields = _stat(pid)
        if fields is not None and fields[3] == str(leader) and fields[0] not in ("Z", "X"):
            members.append(pid)
    return members


def listening_ports(pids: Iterable[int]) -> set[int]:
    """TCP ports on which one of PIDS holds a listening socket (IPv4 or IPv6)."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A":  # TCP_LISTEN
                    inodes[f"socket:[{fields[9]}]"] = int(fields[1].rsplit(":", 1)[1], 16)
    ports = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target in inodes:
                    ports.add(inodes[target])
    return ports


def stop_recorded(pid: int, binary: str, *, grace_s: float = 20.0, name: str = "") -> bool:
    """SIGTERM the `timeout` wrapper PID (it passes the signal on to its process group), wait
    GRACE_S, then SIGKILL what of its session still runs. Returns False when PID was no longer
    ours (already gone): then nothing is signalled."""
    if not is_ours(pid, binary):
        return False
    victims = session_members(pid)
    with contextlib.suppress(ProcessLookupError):  # it may have exited just now
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in victims):
        time.sleep(0.05)
    for p in victims:
        if alive(p):
            print(
                f"{name or binary} (pid {p}) ignored SIGTERM for {grace_s:.0f} s: SIGKILL", file=sys.stderr, flush=True
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    while any(alive(p) for p in victims):
        time.sleep(0.05)
    return True


def tail(path: str | Path, lines: int = 30, *, offset: int = 0) -> str:
    """The last LINES lines of a log file, from byte OFFSET on."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- one process


class ManagedProcess:
    """ARGV under ``timeout LIFETIME`` in a new session, stdout+stderr appended to LOG_DIR/NAME.log
    (the command line goes to LOG_DIR/NAME.cmd). Started by the constructor.

    ENV is added to this process's environment, or with ``inherit_env=False`` to PATH only (the
    program sees what its container would, no more).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        lifetime: str | float = 600,
        kill_after: str = "10s",
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.binary = self.argv[0]
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        lifetime_text = lifetime if isinstance(lifetime, str) else f"{lifetime:g}s"
        command = ["timeout", "--signal=TERM", f"--kill-after={kill_after}", lifetime_text, *self.argv]
        (log_dir / f"{name}.cmd").write_text(shlex.join(command) + "\n")
        base = dict(os.environ) if inherit_env else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()  # this run's output starts here (earlier runs' stays)
            self._popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**base, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self._popen.pid
        # Until the child has exec'd `timeout`, /proc/PID/cmdline is still Python's and
        # is_ours() would take the new process for one that already exited.
        deadline = time.monotonic() + 10
        while self._popen.poll() is None and self.binary not in cmdline(self.pid) and time.monotonic() < deadline:
            time.sleep(0.005)

    @property
    def record(self) -> dict[str, Any]:
        """What a state file keeps to find and stop this process later (see :func:`stop_recorded`)."""
        return {"name": self.name, "pid": self.pid, "binary": self.binary, "log": str(self.log_path)}

    def running(self) -> bool:
        return self._popen.poll() is None and is_ours(self.pid, self.binary)

    def log_tail(self, lines: int = 40) -> str:
        """The last LINES lines this run logged."""
        return tail(self.log_path, lines, offset=self.log_offset)

    def bind_failed(self) -> bool:
        """This run logged that a port it wanted was taken."""
        return ADDRESS_IN_USE in tail(self.log_path, 200, offset=self.log_offset).lower()

    def listens_on(self, *ports: int) -> bool:
        """The program (or a process it started) holds listening sockets on all of PORTS."""
        return set(ports) <= listening_ports(session_members(self.pid))

    def check_running(self) -> None:
        if not self.running():
            raise ProcessExited(
                f"{self.name} exited with {self._popen.poll()}; log {self.log_path}:\n{self.log_tail()}", self
            )

    def wait_until(
        self,
        ready: Callable[[], T],
        timeout_s: float = 30.0,
        what: str = "ready",
        *,
        also_running: Sequence[ManagedProcess] = (),
        interval_s: float = 0.1,
    ) -> T:
        """READY's first truthy result, polled while this process (and ALSO_RUNNING) runs.

        OSError from READY (connection refused, requests' errors) counts as not ready yet.
        Raises ProcessExited when a process exits, TimeoutError after TIMEOUT_S.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            for process in (self, *also_running):
                process.check_running()
            with contextlib.suppress(OSError):
                result = ready()
                if result:
                    return result
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.name} not {what} after {timeout_s:g} s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(interval_s)

    def stop(self, grace_s: float = 10.0) -> None:
        stop_recorded(self.pid, self.binary, grace_s=grace_s, name=self.name)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(5)  # reap it: we are its parent

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- servers on free ports


def _serving(
    process: ManagedProcess, ports: dict[str, int], ready: Callable[[ManagedProcess, dict[str, int]], object] | None
) -> Callable[[], bool]:
    def probe() -> bool:
        return process.listens_on(*ports.values()) and (ready is None or bool(ready(process, ports)))

    return probe


def start_on_free_ports(
    start: Callable[[dict[str, int]], ManagedProcess],
    port_names: Sequence[str],
    *,
    ready: Callable[[ManagedProcess, dict[str, int]], object] | None = None,
    timeout_s: float = 60.0,
    attempts: int = 3,
    taken: set[int] | None = None,
    pick: Callable[[set[int]], int] | None = None,
    also_running: Sequence[ManagedProcess] = (),
) -> tuple[ManagedProcess, dict[str, int]]:
    """Start a server with one fresh port per name in PORT_NAMES (``start(ports)``), wait until it
    listens on all of them itself and READY(process, ports) is truthy.

    A server whose bind failed (it logged "address already in use", whether it exited or not)
    is stopped and started again on new ports, up to ATTEMPTS times: a port that was free when
    picked may be taken before the server binds it. TAKEN holds ports not to pick (those of the
    caller's other servers) and receives the ones chosen. PICK(taken) replaces
    :func:`testkit.ports.free_port` (tests use it to hand out a busy port). Meanwhile each of
    ALSO_RUNNING must keep running (ProcessExited otherwise).
    """
    taken = set() if taken is None else taken
    choose = pick or (lambda exclude: free_port(exclude=exclude))
    for attempt in range(1, attempts + 1):
        ports: dict[str, int] = {}
        for port_name in port_names:
            ports[port_name] = choose(taken | set(ports.values()))
        taken |= set(ports.values())
        process = start(ports)
        try:
            what = f"listening on {ports}" + (" and ready" if ready else "")
            process.wait_until(_serving(process, ports, ready), timeout_s, what, also_running=also_running)
            return process, ports
        except (ProcessExited, TimeoutError) as e:
            # The caller never gets this process: stop it whatever happened.
            process.stop()
            someone_else = isinstance(e, ProcessExited) and e.process is not process
            if someone_else or not process.bind_failed() or attempt == attempts:
                raise
            print(
                f"{process.name}: a port of {ports} was taken before it could bind it: new ports",
                file=sys.stderr,
                flush=True,
            )
    raise AssertionError("unreachable")  # pragma: no cover
