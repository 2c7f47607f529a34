# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.manifest_files: the module runs for real on a temporary folder."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from ansible_collections.zerotrust.aks.plugins.modules import manifest_files
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
ACCOUNT = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "demo", "namespace": "demo"}}


def run_module(capsys: pytest.CaptureFixture[str], **args: t.Any) -> dict[str, t.Any]:
    return utils.run_module(manifest_files.main, capsys, **args)


def files(*objects: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return [{"name": f"{i:03d}-{o['kind'].lower()}.yaml", "object": o} for i, o in enumerate(objects, start=1)]


def test_writes_then_is_idempotent_then_prunes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    first = run_module(capsys, path=str(folder), files=files(NAMESPACE, ACCOUNT))
    assert first["rc"] == 0 and first["changed"] is True
    assert first["written"] == ["001-namespace.yaml", "002-serviceaccount.yaml"]
    assert (folder / "001-namespace.yaml").read_text().startswith("---\napiVersion: v1\nkind: Namespace\n")

    again = run_module(capsys, path=str(folder), files=files(NAMESPACE, ACCOUNT))
    assert again["changed"] is False and again["written"] == [] and again["removed"] == []

    pruned = run_module(capsys, path=str(folder), files=files(NAMESPACE))
    assert pruned["changed"] is True and pruned["removed"] == ["002-serviceaccount.yaml"]
    assert sorted(p.name for p in folder.iterdir()) == ["001-namespace.yaml"]


def test_check_mode_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = run_module(capsys, path=str(tmp_path / "out"), files=files(NAMESPACE), _ansible_check_mode=True)
    assert result["changed"] is True and result["written"] == ["001-namespace.yaml"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"name": "x.yaml", "object": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}}], "Secrets"),
        ([{"name": "../x.yaml", "object": NAMESPACE}], "plain name"),
        ([{"name": "x.yml", "object": NAMESPACE}], "plain name"),
        ([{"name": "x.yaml", "object": NAMESPACE}, {"name": "x.yaml", "object": ACCOUNT}], "unique"),
    ],
)
def test_refuses_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path, entries: list, message: str) -> None:
    result = run_module(capsys, path=str(tmp_path / "out"), files=entries)
    assert result["rc"] == 1 and result["failed"] is True and message in result["msg"]
    assert not (tmp_path / "out").exists()
