"""The shared run_playbook helper (tests/support/playbook.py): command line and recap parsing.

Every suite's changed/failed assertions go through this parsing, so it is checked here on
ansible-playbook's own output format, and once end to end on a real run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.playbook import ANSIBLE_PLAYBOOK, PlaybookRun, playbook_command, run_playbook

RECAP = """
PLAY [all] *********************************************************************

TASK [Debug] *******************************************************************
ok: [localhost]

PLAY RECAP *********************************************************************
localhost                  : ok=12   changed=3    unreachable=0    failed=1    skipped=4    rescued=0    ignored=2
other.example              : ok=1    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
"""


def test_the_recap_is_parsed_per_host() -> None:
    run = PlaybookRun(["ansible-playbook"], 2, RECAP, "")
    assert set(run.recaps) == {"localhost", "other.example"}
    local = run.recap()
    assert (local.ok, local.changed, local.failed, local.skipped, local.ignored) == (12, 3, 1, 4, 2)
    assert (run.changed, run.failed) == (3, 1)
    assert run.recap("other.example").unreachable == 1


def test_only_the_last_recap_counts() -> None:
    earlier = RECAP.replace("changed=3", "changed=9")
    run = PlaybookRun(["ansible-playbook"], 0, earlier + RECAP, "")
    assert run.changed == 3


def test_a_run_without_recap_fails_with_its_output() -> None:
    run = PlaybookRun(["ansible-playbook", "x.yml"], 4, "", "ERROR! the playbook could not be found")
    assert run.recaps == {}
    with pytest.raises(AssertionError, match="could not be found"):
        run.recap()


def test_the_command_line_keeps_inventory_order_and_puts_args_last() -> None:
    command = playbook_command(
        "site.yml",
        "--tags",
        "x",
        inventory=["inventories/local", Path("inventories/testbed")],
        extra_vars={"flag": True, "hosts": ["a", "b"]},
        extra_vars_files=["vars.yml"],
        check_mode=True,
        diff=True,
        verbosity=3,
    )
    assert command == [
        str(ANSIBLE_PLAYBOOK),
        "site.yml",
        "-i",
        "inventories/local",
        "-i",
        "inventories/testbed",
        "-e",
        "@vars.yml",
        "-e",
        '{"flag": true, "hosts": ["a", "b"]}',
        "--check",
        "--diff",
        "-vvv",
        "--tags",
        "x",
    ]


def test_a_real_run_reports_its_recap(ansible_env: dict[str, str], tmp_path: Path) -> None:
    playbook = tmp_path / "touch.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  connection: local\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Write a file\n"
        "      ansible.builtin.copy: {content: x, dest: '{{ target }}', mode: '0600'}\n"
    )
    target = tmp_path / "out"
    first = run_playbook(playbook, env=ansible_env, extra_vars={"target": str(target)})
    assert (first.changed, first.failed) == (1, 0), first.describe()
    checked = run_playbook(playbook, env=ansible_env, extra_vars={"target": str(target)}, check_mode=True)
    assert checked.changed == 0, checked.describe()
    failed = run_playbook(playbook, env=ansible_env, extra_vars={"target": "/nonexistent/dir/x"}, must_succeed=False)
    assert failed.returncode != 0
    assert failed.failed == 1, failed.describe()
