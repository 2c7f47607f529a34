"""Security scans of rendered manifests, shared by the render and kind suites."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .playbook import REPO

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def assert_checkov_clean(directory: Path) -> None:
    """checkov (its Kubernetes framework, no downloads) finds no failed check in DIRECTORY and
    passes at least one, so an empty or unread folder cannot pass."""
    result = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "--skip-download", "--quiet", "--compact"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", result.stdout)
    assert summary, result.stdout + result.stderr
    assert int(summary.group(2)) == 0, result.stdout
    assert int(summary.group(1)) > 0
