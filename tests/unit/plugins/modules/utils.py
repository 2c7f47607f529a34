"""Run a module's main() as Ansible would and return the JSON it exits with."""

from __future__ import annotations

import json
import typing as t
from unittest import mock

import pytest
from ansible.module_utils import _internal
from ansible.module_utils.testing import patch_module_args


def run_module(main: t.Callable[[], None], capsys: pytest.CaptureFixture[str], **args: t.Any) -> dict[str, t.Any]:
    """Run ``main`` with ``args``; return its exit JSON (with ``rc`` 0 or 1).

    The module runs as on a target host. Once any controller code is imported in the test process
    (the filter and lookup plugin tests do), ansible-core sends module warnings to the
    controller's display instead of the module's result, and a test of those warnings would
    pass or fail by test order."""
    with (
        patch_module_args(args),
        mock.patch.object(_internal, "is_controller", False),
        pytest.raises(SystemExit) as exc,
    ):
        main()
    result: dict[str, t.Any] = json.loads(capsys.readouterr().out)
    result["rc"] = exc.value.code
    return result
