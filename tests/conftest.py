"""Fixtures shared by the pytest suites (render, playbooks, testbed, ...).

Stdlib and pytest only: ansible-test units also loads this file.
"""

from __future__ import annotations

import os
import subprocess
import typing as t
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections path in which zerotrust.aks is this checkout (a symlink)."""
    root = tmp_path_factory.mktemp("collections")
    namespace = root / "ansible_collections" / "zerotrust"
    namespace.mkdir(parents=True)
    (namespace / "aks").symlink_to(REPO)
    return root


@pytest.fixture(scope="session")
def ansible_env(collections_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for running ansible-playbook from .venv against this checkout."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_LOCAL_TEMP=str(tmp_path_factory.mktemp("ansible-local")),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_STDOUT_CALLBACK="default",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def run_playbook(
    env: dict[str, str], playbook: Path | str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook; fail with its output when ``check`` and it fails."""
    command = [str(VENV_BIN / "ansible-playbook"), str(playbook), *args]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed with {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def playbook_runner(ansible_env: dict[str, str]) -> t.Callable[..., subprocess.CompletedProcess[str]]:
    def runner(playbook: Path | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_playbook(ansible_env, playbook, *args, check=check)

    return runner
