"""zerotrust.aks.cookie_secret used from a playbook, as a user would, at -vvv."""

from __future__ import annotations

import re
import subprocess
import typing as t
from pathlib import Path

HERE = Path(__file__).resolve().parent

Runner = t.Callable[..., subprocess.CompletedProcess[str]]


def test_generated_once_then_kept_and_never_printed(playbook_runner: Runner, tmp_path: Path) -> None:
    secret_file = tmp_path / "cookie-secret"
    result = playbook_runner(HERE / "cookie_secret.yml", "-vvv", "-e", f"secret_file={secret_file}")
    output = result.stdout + result.stderr

    secret = secret_file.read_text()
    assert len(secret) == 43  # 32 bytes, unpadded base64url

    # First call generates, second keeps: visible through the non-secret metadata.
    match = re.search(
        r"first changed=True fingerprint=(sha256:[0-9a-f]{12}); second changed=False fingerprint=(sha256:[0-9a-f]{12})",
        output,
    )
    assert match, output
    assert match.group(1) == match.group(2)
    assert re.search(r"ok=\d+\s+changed=2\s", output)  # the first call and the file

    assert secret not in output
    # no_log tasks still announce themselves, so the test really ran them at -vvv.
    assert output.count("the output has been hidden due to the fact that") >= 3
