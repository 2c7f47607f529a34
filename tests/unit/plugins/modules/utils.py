"""Run a module's main() as Ansible would and return the JSON it exits with."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible.module_utils.testing import patch_module_args


def run_module(main: t.Callable[[], None], capsys: pytest.CaptureFixture[str], **args: t.Any) -> dict[str, t.Any]:
    """Run ``main`` with ``args``; return its exit JSON (with ``rc`` 0 or 1)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        main()
    result: dict[str, t.Any] = json.loads(capsys.readouterr().out)
    result["rc"] = exc.value.code
    return result
