"""Fixtures shared by the pytest suites (render, playbooks, testbed, ...).

Stdlib and pytest only: ansible-test units also loads this file. Helpers that are not fixtures
live in the ``support`` package next to it (tests/support/); the PKI, process runner and port
rule shared with the testbed in ``testkit`` (testbed/lib/testkit/), put on sys.path here.
"""

from __future__ import annotations

import functools
import sys
import typing as t
from pathlib import Path

import pytest

# pytest puts this folder on sys.path when it imports this file (no __init__.py above it);
# ansible-test units imports it through its collection loader, which does not. Both then find
# `support` (tests/support) and, from testbed/lib, `testkit`.
TESTS = Path(__file__).resolve().parent
for root in (TESTS, TESTS.parent / "testbed" / "lib"):
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

from support.playbook import REPO, PlaybookRun, ansible_environment, run_playbook


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
    return ansible_environment(collections_path, tmp_path_factory.mktemp("ansible-local"))


@pytest.fixture(scope="session")
def playbook_runner(ansible_env: dict[str, str]) -> t.Callable[..., PlaybookRun]:
    """:func:`support.playbook.run_playbook` with ``env=ansible_env``."""
    return functools.partial(run_playbook, env=ansible_env)
