"""Versions that live in two places because they pin two kinds of artifact must agree.

The oauth2-proxy image the role deploys and the oauth2-proxy Go module the testbed builds for
the login-flow tests are the same release: otherwise the tests would exercise other code than
users run.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_testbed_builds_the_oauth2_proxy_release_the_role_deploys() -> None:
    defaults = yaml.safe_load((REPO / "roles/oauth2_proxy/defaults/main.yml").read_text())
    versions = (REPO / "testbed/versions.env").read_text()
    match = re.search(r"^OAUTH2_PROXY_VERSION=(\S+)$", versions, re.MULTILINE)
    assert match, "testbed/versions.env has no OAUTH2_PROXY_VERSION"
    assert defaults["oauth2_proxy_image_tag"] == match.group(1)
