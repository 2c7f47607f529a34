"""Molecule verifier (pytest-testinfra) for the testbed and kind scenarios.

The same tests run for both scenarios: they read the cluster through the kubeconfig in
K8S_AUTH_KUBECONFIG, and the login-flow tests of tests/authflow (added to this run through
the verifier's additional_files_or_dirs) take their objects from that cluster as well.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    path = os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ.get("KUBECONFIG", "")
    if not path or not Path(path).is_file():
        pytest.fail("K8S_AUTH_KUBECONFIG must name the scenario's kubeconfig")
    return Path(path)
