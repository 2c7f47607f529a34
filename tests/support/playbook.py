"""Run ansible-playbook from .venv against this checkout, as a user would, and read its recap.

Every suite that runs a playbook goes through :func:`run_playbook` (or a :class:`Playbook` bound
to one playbook), so the environment, the command line and the recap parsing have one home::

    env = ansible_environment(collections_path, local_temp)
    run = run_playbook("playbooks/cluster.yml", env=env, inventory=["inventories/local"],
                       extra_vars={"zerotrust_aks_render_dir": str(out)}, check_mode=True)
    assert run.recap().changed == 0, run.describe()

Stdlib only: tests/conftest.py imports it, and ansible-test units loads that file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import typing as t
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
ANSIBLE_PLAYBOOK = VENV_BIN / "ansible-playbook"

PathLike = Path | str

# One host line of PLAY RECAP, e.g.
# "localhost : ok=12 changed=3 unreachable=0 failed=0 skipped=4 rescued=0 ignored=0".
_RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)


def ansible_environment(
    collections_path: Path, local_temp: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` (default: this process's environment) set up to run .venv's ansible-playbook
    against this checkout: zerotrust.aks from ``collections_path``, plain uncoloured output,
    no retry files, .venv/bin first on PATH."""
    env = dict(os.environ if base is None else base)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_LOCAL_TEMP=str(local_temp),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_STDOUT_CALLBACK="default",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def without_cluster_access(env: Mapping[str, str], missing_kubeconfig: Path) -> dict[str, str]:
    """``env`` with no way to reach a Kubernetes cluster (for render mode): no ``K8S_AUTH_*``,
    and ``KUBECONFIG`` naming ``missing_kubeconfig``, a file that must not exist."""
    if missing_kubeconfig.exists():
        raise ValueError(f"{missing_kubeconfig} exists; render mode must find no kubeconfig")
    stripped = {k: v for k, v in env.items() if not k.startswith("K8S_AUTH_")}
    stripped["KUBECONFIG"] = str(missing_kubeconfig)
    return stripped


@dataclasses.dataclass(frozen=True)
class Recap:
    """One host's counts from PLAY RECAP."""

    host: str
    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int
    rescued: int
    ignored: int


@dataclasses.dataclass(frozen=True)
class PlaybookRun:
    """What one ansible-playbook run printed and returned (``stdout``, ``stderr`` and
    ``returncode`` are named as in :class:`subprocess.CompletedProcess`)."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def recaps(self) -> dict[str, Recap]:
        """Every host of the last PLAY RECAP (empty when the run ended before one was printed)."""
        _before, marker, recap = self.stdout.rpartition("PLAY RECAP")
        if not marker:
            return {}
        found: dict[str, Recap] = {}
        for match in _RECAP_LINE.finditer(recap):
            counts = {k: int(v) for k, v in match.groupdict().items() if k != "host"}
            found[match["host"]] = Recap(host=match["host"], **counts)
        return found

    def recap(self, host: str = "localhost") -> Recap:
        """``host``'s counts; fails with the run's output when there is no recap for it."""
        try:
            return self.recaps[host]
        except KeyError:
            raise AssertionError(f"no PLAY RECAP line for {host}\n{self.describe()}") from None

    @property
    def changed(self) -> int:
        """``changed`` of localhost's recap (the hosts of this collection's playbooks)."""
        return self.recap().changed

    @property
    def failed(self) -> int:
        """``failed`` of localhost's recap."""
        return self.recap().failed

    def describe(self, tail: int = 20000) -> str:
        """The command, its exit status and (the end of) its output, for assertion messages."""
        return (
            f"{' '.join(self.command)} exited with {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-tail:]}\n--- stderr ---\n{self.stderr[-tail:]}"
        )


def playbook_command(
    playbook: PathLike,
    *args: str,
    inventory: Sequence[PathLike] = (),
    extra_vars: Mapping[str, t.Any] | None = None,
    extra_vars_files: Sequence[PathLike] = (),
    check_mode: bool = False,
    diff: bool = False,
    verbosity: int = 0,
) -> list[str]:
    """The ansible-playbook command line (``args`` last, so they can add to or override anything)."""
    command = [str(ANSIBLE_PLAYBOOK), str(playbook)]
    for source in inventory:
        command += ["-i", str(source)]
    for path in extra_vars_files:
        command += ["-e", f"@{path}"]
    if extra_vars:
        # JSON keeps types (lists, booleans, numbers); key=value would make every value a string.
        command += ["-e", json.dumps(dict(extra_vars))]
    if check_mode:
        command.append("--check")
    if diff:
        command.append("--diff")
    if verbosity:
        command.append("-" + "v" * verbosity)
    return [*command, *args]


def run_playbook(
    playbook: PathLike,
    *args: str,
    env: Mapping[str, str],
    inventory: Sequence[PathLike] = (),
    extra_vars: Mapping[str, t.Any] | None = None,
    extra_vars_files: Sequence[PathLike] = (),
    check_mode: bool = False,
    diff: bool = False,
    verbosity: int = 0,
    must_succeed: bool = True,
    timeout: float = 900,
    cwd: Path = REPO,
) -> PlaybookRun:
    """Run ``playbook`` (relative to ``cwd``, the checkout, or absolute) with ``env``.

    Inventories are passed in order (``-i`` each; later sources win on conflicts), then the
    extra-vars files, then ``extra_vars`` as one JSON ``-e``, then ``args`` verbatim. With
    ``must_succeed`` a non-zero exit fails the test with the whole output.
    """
    command = playbook_command(
        playbook,
        *args,
        inventory=inventory,
        extra_vars=extra_vars,
        extra_vars_files=extra_vars_files,
        check_mode=check_mode,
        diff=diff,
        verbosity=verbosity,
    )
    result = subprocess.run(
        command, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    run = PlaybookRun(command, result.returncode, result.stdout, result.stderr)
    # For debugging a suite: ZEROTRUST_AKS_TEST_OUTPUT=<file> appends every run's output there.
    log = os.environ.get("ZEROTRUST_AKS_TEST_OUTPUT")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}\n")
    if must_succeed and run.returncode != 0:
        raise AssertionError(run.describe())
    return run


@dataclasses.dataclass(frozen=True)
class Playbook:
    """One playbook with its environment, inventory and extra-vars files bound; call it to run it.

    ``playbook(*args, check_mode=..., diff=..., verbosity=..., extra_vars=..., must_succeed=...)``
    is :func:`run_playbook` with the bound settings.
    """

    path: PathLike
    env: Mapping[str, str]
    inventory: Sequence[PathLike] = ()
    extra_vars_files: Sequence[PathLike] = ()
    timeout: float = 900

    def __call__(
        self,
        *args: str,
        extra_vars: Mapping[str, t.Any] | None = None,
        check_mode: bool = False,
        diff: bool = False,
        verbosity: int = 0,
        must_succeed: bool = True,
    ) -> PlaybookRun:
        return run_playbook(
            self.path,
            *args,
            env=self.env,
            inventory=self.inventory,
            extra_vars=extra_vars,
            extra_vars_files=self.extra_vars_files,
            check_mode=check_mode,
            diff=diff,
            verbosity=verbosity,
            must_succeed=must_succeed,
            timeout=self.timeout,
        )
