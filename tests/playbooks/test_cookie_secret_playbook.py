"""zerotrust.aks.cookie_secret used from a playbook, as a user would, at -vvv."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

from support.playbook import PlaybookRun

HERE = Path(__file__).resolve().parent

Runner = t.Callable[..., PlaybookRun]


def test_generated_once_then_kept_and_never_printed(playbook_runner: Runner, tmp_path: Path) -> None:
    secret_file = tmp_path / "cookie-secret"
    result = playbook_runner(HERE / "cookie_secret.yml", verbosity=3, extra_vars={"secret_file": str(secret_file)})
    output = result.output

    secret = secret_file.read_text()
    assert len(secret) == 43  # 32 bytes, unpadded base64url

    # First call generates, second keeps: visible through the non-secret metadata.
    match = re.search(
        r"first changed=True fingerprint=(sha256:[0-9a-f]{12}); second changed=False fingerprint=(sha256:[0-9a-f]{12})",
        output,
    )
    assert match, output
    assert match.group(1) == match.group(2)
    assert result.changed == 2, result.describe()  # the first call and the file

    assert secret not in output
    # no_log tasks still announce themselves, so the test really ran them at -vvv.
    assert output.count("the output has been hidden due to the fact that") >= 3
