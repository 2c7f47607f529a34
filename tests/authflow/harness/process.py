"""The programs of the login flow: bounded lifetime, own session, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
import typing as t
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (the program binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """A program under ``timeout`` (bounded lifetime) in its own session, logging to a file.

    ``stop()`` signals only this process group (the one ``start`` created): SIGTERM, which
    ``timeout`` passes on, then SIGKILL after a grace period.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        lifetime_s: int = 600,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{name}.cmd").write_text(shlex.join(self.argv) + "\n")
        command = ["timeout", "--signal=TERM", "--kill-after=10s", f"{lifetime_s}s", *self.argv]
        self._log = self.log_path.open("wb")
        # Only PATH from the caller: the program sees the environment its pod would, no more.
        process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=process_env, cwd=cwd, start_new_session=True
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}; log {self.log_path}:\n{self.log_tail()}"
            )

    def wait_until(self, ready: t.Callable[[], bool], timeout_s: float = 30.0, what: str = "ready") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_running()
            with contextlib.suppress(OSError, requests.RequestException):
                if ready():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not {what} after {timeout_s}s; log {self.log_path}:\n{self.log_tail()}")

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_ok(url: str, **kwargs: t.Any) -> bool:
    return requests.get(url, timeout=2, allow_redirects=False, **kwargs).status_code == 200
