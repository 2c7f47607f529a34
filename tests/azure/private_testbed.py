"""A handle on the private testbed test_site_end_to_end.py deploys to (the site_testbed fixture)."""

from __future__ import annotations

import subprocess
import typing as t
from pathlib import Path


class SiteTestbed(t.NamedTuple):
    state_dir: Path
    kubeconfig: Path
    audit_log: Path
    kubectl: Path

    def kubectl_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
