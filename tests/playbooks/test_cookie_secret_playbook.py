"""zerotrust.aks.cookie_secret used from a playbook, as a user would, at -vvv."""

from __future__ import annotations

import json
import re
import typing as t
from pathlib import Path

from support.playbook import PlaybookRun, run_playbook

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


def test_secret_hidden_even_when_the_task_forgets_no_log(ansible_env: dict[str, str], tmp_path: Path) -> None:
    """The action plugin marks the module's result no_log: at -vvv, in the JSON callback that
    stands for AWX's job events, and in diff mode, the value never shows; register keeps it; a
    failure still shows its cause."""
    invalid = "x" * 40 + "-not-a-cookie-secret"
    for callback in ("ansible.builtin.default", "ansible.posix.json"):
        secret_file = tmp_path / f"cookie-secret-{callback}"
        result = run_playbook(
            HERE / "cookie_secret_without_no_log.yml",
            env={**ansible_env, "ANSIBLE_STDOUT_CALLBACK": callback},
            verbosity=3,
            extra_vars={"secret_file": str(secret_file)},
            must_succeed=False,
        )
        output = result.output
        secret = secret_file.read_text()
        assert len(secret) == 43, callback  # register held the generated value
        assert secret not in output, callback
        assert invalid not in output, callback
        # The registered results carry the metadata, and the second call kept the first value.
        assert re.search(r"first changed=True fingerprint=sha256:[0-9a-f]{12}; second changed=False", output), output
        assert "same=True" in output
        # The last task fails, with its cause visible.
        failures = (
            # At -vvv ansible-playbook prints its version and config before the JSON document.
            json.loads(result.stdout[result.stdout.index("\n{\n") :])["stats"]["localhost"]["failures"]
            if callback == "ansible.posix.json"
            else result.failed
        )
        assert failures == 1, result.describe()
        assert "existing cookie secret is not valid" in output, result.describe()
        assert "raw length is 60 bytes" in output, result.describe()
