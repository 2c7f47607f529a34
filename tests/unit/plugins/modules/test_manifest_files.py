# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.manifest_files: the module runs for real on a temporary folder."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common import warnings
from ansible_collections.zerotrust.aks.plugins.modules import manifest_files
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils

INDEX = ".zerotrust-aks-render.index"
NAMESPACE: dict[str, t.Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
ACCOUNT: dict[str, t.Any] = {
    "apiVersion": "v1",
    "kind": "ServiceAccount",
    "metadata": {"name": "demo", "namespace": "demo"},
}
SERVICE: dict[str, t.Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "api", "namespace": "demo"},
    "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "api"}},
}
NAMESPACE_FILE = "001-cluster-namespace-demo.yaml"
ACCOUNT_FILE = "002-demo-serviceaccount-demo.yaml"
SERVICE_FILE = "003-demo-service-api.yaml"


def run_module(capsys: pytest.CaptureFixture[str], **args: t.Any) -> dict[str, t.Any]:
    # A module process warns once; these tests run the module many times in one process, and
    # ansible-core keeps warnings in module globals, so each run would report the earlier ones.
    warnings._global_warnings.clear()
    warnings._global_deprecations.clear()
    result: dict[str, t.Any] = utils.run_module(manifest_files.main, capsys, **args)
    return result


def render(
    capsys: pytest.CaptureFixture[str], folder: Path, *objects: dict[str, t.Any], **args: t.Any
) -> dict[str, t.Any]:
    result = run_module(capsys, path=str(folder), objects=list(objects), **args)
    assert result["rc"] == 0, result
    return result


def messages(result: dict[str, t.Any], key: str) -> list[str]:
    """Warning or deprecation texts: ansible-core 2.19 exits with summaries ({"event": {"msg": ...}})."""
    return [item["event"]["msg"] if isinstance(item, dict) else item for item in result.get(key, [])]


def index_of(folder: Path) -> dict[str, t.Any]:
    document: dict[str, t.Any] = json.loads((folder / INDEX).read_text())
    return document


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry of the folder with its content (None for a folder)."""
    if not folder.exists():
        return {}
    return {path.name: None if path.is_dir() else path.read_bytes() for path in folder.iterdir()}


def test_first_render_sorts_names_and_indexes_the_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    result = render(capsys, folder, SERVICE, ACCOUNT, NAMESPACE)  # any order in, apply order out

    assert result["changed"] is True
    assert result["files"] == [NAMESPACE_FILE, ACCOUNT_FILE, SERVICE_FILE]
    assert result["written"] == result["files"] and result["unchanged"] == []
    assert result["removed"] == [] and result["foreign_files"] == []
    assert result["index"] == str(folder / INDEX)
    assert "warnings" not in result
    assert listing(folder) == sorted([INDEX, NAMESPACE_FILE, ACCOUNT_FILE, SERVICE_FILE])
    assert index_of(folder) == {"format": 1, "files": [NAMESPACE_FILE, ACCOUNT_FILE, SERVICE_FILE]}
    # Sorted keys, one document per file, the object unchanged.
    text = (folder / SERVICE_FILE).read_text()
    assert text.startswith("---\napiVersion: v1\nkind: Service\nmetadata:\n")
    assert yaml.safe_load(text) == SERVICE


def test_rerender_changes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE, ACCOUNT)
    before = snapshot(folder)

    again = render(capsys, folder, ACCOUNT, NAMESPACE, _ansible_diff=True)
    assert again["changed"] is False
    assert again["written"] == [] and again["removed"] == []
    assert again["unchanged"] == [NAMESPACE_FILE, ACCOUNT_FILE]
    assert again["diff"]["before"] == again["diff"]["after"] == ""
    assert snapshot(folder) == before


def test_changed_object_rewrites_only_its_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE, ACCOUNT)
    relabelled = {**ACCOUNT, "metadata": {**ACCOUNT["metadata"], "labels": {"team": "a"}}}

    result = render(capsys, folder, NAMESPACE, relabelled, _ansible_diff=True)
    assert result["changed"] is True
    assert result["written"] == [ACCOUNT_FILE] and result["unchanged"] == [NAMESPACE_FILE]
    assert result["diff"]["after"] == f"changed {ACCOUNT_FILE}\n"
    assert yaml.safe_load((folder / ACCOUNT_FILE).read_text())["metadata"]["labels"] == {"team": "a"}


def test_object_removed_prunes_its_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE, ACCOUNT, SERVICE)

    result = render(capsys, folder, NAMESPACE, SERVICE, _ansible_diff=True)
    # The service moves from 003 to 002: a new file, and both old names go.
    assert result["changed"] is True
    assert result["files"] == [NAMESPACE_FILE, "002-demo-service-api.yaml"]
    assert result["written"] == ["002-demo-service-api.yaml"]
    assert result["removed"] == [ACCOUNT_FILE, SERVICE_FILE]
    assert result["diff"] == {
        "before_header": str(folder),
        "after_header": str(folder),
        "before": f"removed {ACCOUNT_FILE}\nremoved {SERVICE_FILE}\n",
        "after": "added 002-demo-service-api.yaml\n",
    }
    assert listing(folder) == sorted([INDEX, NAMESPACE_FILE, "002-demo-service-api.yaml"])
    assert index_of(folder)["files"] == [NAMESPACE_FILE, "002-demo-service-api.yaml"]


def test_foreign_files_are_kept_and_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE, ACCOUNT)
    (folder / "kustomization.yaml").write_text("resources: [001-cluster-namespace-demo.yaml]\n")
    (folder / "notes.yaml").write_text("mine: true\n")
    (folder / "README.md").write_text("hand-written\n")
    (folder / "overlays").mkdir()
    theirs = {name: snapshot(folder)[name] for name in ("kustomization.yaml", "notes.yaml", "README.md")}

    result = render(capsys, folder, NAMESPACE)  # the ServiceAccount goes: prune runs
    assert result["removed"] == [ACCOUNT_FILE]
    assert result["foreign_files"] == ["README.md", "kustomization.yaml", "notes.yaml", "overlays"]
    assert messages(result, "warnings") == [
        f"left alone in {folder} (not written by this module): README.md, kustomization.yaml, notes.yaml, overlays"
    ]
    assert {name: snapshot(folder)[name] for name in theirs} == theirs
    assert (folder / "overlays").is_dir()
    assert index_of(folder)["files"] == [NAMESPACE_FILE]


def test_folder_without_index_is_not_pruned(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A folder rendered by zerotrust.aks 0.1.0: its files, no index.
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / NAMESPACE_FILE).write_text(manifest_files.to_yaml(NAMESPACE))
    (folder / "002-demo-configmap-old.yaml").write_text("---\nkind: ConfigMap\n")

    result = render(capsys, folder, NAMESPACE, ACCOUNT)
    assert result["changed"] is True
    assert result["written"] == [ACCOUNT_FILE] and result["unchanged"] == [NAMESPACE_FILE]
    assert result["removed"] == []
    assert result["foreign_files"] == ["002-demo-configmap-old.yaml"]
    no_index, left_alone = messages(result, "warnings")
    assert f"{folder} holds .yaml files but no index ({INDEX})" in no_index and "nothing was pruned" in no_index
    assert left_alone == f"left alone in {folder} (not written by this module): 002-demo-configmap-old.yaml"
    assert (folder / "002-demo-configmap-old.yaml").exists()
    # The files it rendered are now owned (the same-named one adopted), the stale one is not.
    assert index_of(folder)["files"] == [NAMESPACE_FILE, ACCOUNT_FILE]

    again = render(capsys, folder, NAMESPACE)
    assert again["removed"] == [ACCOUNT_FILE]
    assert (folder / "002-demo-configmap-old.yaml").exists()
    assert [m.split(" (")[0] for m in messages(again, "warnings")] == [f"left alone in {folder}"]


def test_index_is_written_even_when_every_file_is_already_right(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE)
    (folder / INDEX).unlink()

    result = render(capsys, folder, NAMESPACE)
    assert result["changed"] is True and result["written"] == [] and result["unchanged"] == [NAMESPACE_FILE]
    assert index_of(folder)["files"] == [NAMESPACE_FILE]


def test_owned_file_deleted_by_hand_leaves_the_index(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE, ACCOUNT)
    (folder / ACCOUNT_FILE).unlink()

    result = render(capsys, folder, NAMESPACE)
    assert result["changed"] is True and result["removed"] == []  # nothing left to remove
    assert index_of(folder)["files"] == [NAMESPACE_FILE]


def test_a_run_that_stops_half_way_still_owns_what_it_wrote(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE)
    (folder / SERVICE_FILE).mkdir()  # the ServiceAccount's file is written, the Service's cannot be

    failed = run_module(capsys, path=str(folder), objects=[NAMESPACE, ACCOUNT, SERVICE])
    assert failed["rc"] == 1 and failed["msg"].startswith(f"cannot write to {folder}: ")
    assert (folder / ACCOUNT_FILE).is_file()
    assert ACCOUNT_FILE in index_of(folder)["files"]

    (folder / SERVICE_FILE).rmdir()
    result = render(capsys, folder, NAMESPACE)
    assert result["removed"] == [ACCOUNT_FILE] and result["foreign_files"] == []
    assert listing(folder) == sorted([INDEX, NAMESPACE_FILE])


def test_kustomization_lists_the_files_and_is_owned(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    result = render(capsys, folder, ACCOUNT, NAMESPACE, kustomization=True)
    assert result["files"] == [NAMESPACE_FILE, ACCOUNT_FILE, "kustomization.yaml"]
    assert result["written"] == result["files"]
    assert yaml.safe_load((folder / "kustomization.yaml").read_text()) == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [NAMESPACE_FILE, ACCOUNT_FILE],
    }
    assert index_of(folder)["files"] == [NAMESPACE_FILE, ACCOUNT_FILE, "kustomization.yaml"]

    same = render(capsys, folder, NAMESPACE, ACCOUNT, kustomization=True)
    assert same["changed"] is False and same["foreign_files"] == []

    fewer = render(capsys, folder, NAMESPACE, kustomization=True)
    assert fewer["written"] == ["kustomization.yaml"] and fewer["removed"] == [ACCOUNT_FILE]
    assert yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"] == [NAMESPACE_FILE]

    # Switched off: the module's own kustomization.yaml goes like any file it no longer renders.
    off = render(capsys, folder, NAMESPACE)
    assert off["removed"] == ["kustomization.yaml"]
    assert listing(folder) == sorted([INDEX, NAMESPACE_FILE])


@pytest.mark.parametrize("theirs", ["kustomization.yaml", "kustomization.yml", "Kustomization"])
def test_foreign_kustomization_is_never_overwritten(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, theirs: str
) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE)
    (folder / theirs).write_text("resources: [mine.yaml]\n")
    before = snapshot(folder)

    result = run_module(capsys, path=str(folder), objects=[NAMESPACE, ACCOUNT], kustomization=True)
    assert result["rc"] == 1 and result["failed"] is True
    assert f"{folder / theirs} exists and was not written by this module" in result["msg"]
    assert snapshot(folder) == before  # nothing written, not even the ServiceAccount

    # Without kustomization=true it is simply left alone.
    kept = render(capsys, folder, NAMESPACE, ACCOUNT)
    assert kept["foreign_files"] == [theirs]
    assert (folder / theirs).read_bytes() == before[theirs]


def test_prune_false_keeps_owned_files_owned(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE, ACCOUNT)

    kept = render(capsys, folder, NAMESPACE, prune=False)
    assert kept["changed"] is False and kept["removed"] == [] and kept["foreign_files"] == []
    assert (folder / ACCOUNT_FILE).exists()
    assert index_of(folder)["files"] == [NAMESPACE_FILE, ACCOUNT_FILE]

    pruned = render(capsys, folder, NAMESPACE)
    assert pruned["removed"] == [ACCOUNT_FILE]


def test_check_mode_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    first = render(capsys, folder, NAMESPACE, kustomization=True, _ansible_check_mode=True)
    assert first["changed"] is True and first["written"] == [NAMESPACE_FILE, "kustomization.yaml"]
    assert not folder.exists()

    render(capsys, folder, NAMESPACE, ACCOUNT)
    (folder / "notes.yaml").write_text("mine: true\n")
    before = snapshot(folder)
    result = render(capsys, folder, SERVICE, _ansible_check_mode=True)
    assert result["changed"] is True
    assert result["written"] == ["001-demo-service-api.yaml"]
    assert result["removed"] == [NAMESPACE_FILE, ACCOUNT_FILE]
    assert result["foreign_files"] == ["notes.yaml"]
    assert snapshot(folder) == before


def test_empty_object_list_prunes_everything_owned(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    render(capsys, folder, NAMESPACE)
    result = render(capsys, folder)
    assert result["removed"] == [NAMESPACE_FILE] and result["files"] == []
    assert listing(folder) == [INDEX] and index_of(folder)["files"] == []


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "demo"}, "data": {"k": "dg=="}}


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        (
            [NAMESPACE, SECRET],
            "refusing to write Secrets to files (their values must never reach a file): Secret demo/s",
        ),
        ([{"apiVersion": "v1", "kind": "List", "items": [SECRET]}], "refusing List (a list could hold Secrets)"),
        ([NAMESPACE, ACCOUNT, dict(ACCOUNT)], "ServiceAccount demo/demo is listed twice"),
        (
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}],
            "every object needs apiVersion, kind and metadata",
        ),
    ],
    ids=["secret", "list", "duplicate", "no-name"],
)
def test_refuses_bad_objects_before_writing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, objects: list[dict[str, t.Any]], message: str
) -> None:
    result = run_module(capsys, path=str(tmp_path / "out"), objects=objects)
    assert result["rc"] == 1 and result["failed"] is True
    assert message in result["msg"]
    assert "dg==" not in json.dumps({k: v for k, v in result.items() if k != "invocation"})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ("not json", "is not JSON"),
        ('{"format": 2, "files": []}', "has format 2, written by a newer zerotrust.aks"),
        ('{"files": ["a.yaml"]}', "is not a format 1 index"),
        ('{"format": 1, "files": ["../outside.yaml"]}', "not plain .yaml files"),
        ('{"format": 1, "files": ["README.md"]}', "not plain .yaml files"),
    ],
)
def test_refuses_an_index_it_cannot_trust(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, index: str, message: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / INDEX).write_text(index)
    (folder / "README.md").write_text("keep me\n")
    before = snapshot(folder)

    result = run_module(capsys, path=str(folder), objects=[NAMESPACE])
    assert result["rc"] == 1 and message in result["msg"]
    assert snapshot(folder) == before


def test_refuses_a_file_as_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("x")
    result = run_module(capsys, path=str(target), objects=[NAMESPACE])
    assert result["rc"] == 1 and "is not a folder" in result["msg"]


def test_deprecated_files_option_still_renders(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    files = [{"name": "b.yaml", "object": NAMESPACE}, {"name": "a.yaml", "object": ACCOUNT}]
    result = run_module(capsys, path=str(folder), files=files)
    assert result["rc"] == 0 and result["files"] == ["b.yaml", "a.yaml"]
    assert messages(result, "deprecations") == [
        "The files option is deprecated; pass the objects as objects, and the module names the files"
    ]
    assert index_of(folder)["files"] == ["b.yaml", "a.yaml"]

    # Switching to objects prunes the old names: they are in the index.
    switched = render(capsys, folder, NAMESPACE, ACCOUNT)
    assert switched["removed"] == ["a.yaml", "b.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"files": [{"name": "x.yaml", "object": SECRET}]}, "refusing to write Secrets"),
        ({"files": [{"name": "../x.yaml", "object": NAMESPACE}]}, "plain name"),
        ({"files": [{"name": "x.yml", "object": NAMESPACE}]}, "plain name"),
        ({"files": [{"name": "kustomization.yaml", "object": NAMESPACE}]}, "other than kustomization.yaml"),
        ({"files": [{"name": "x.yaml", "object": NAMESPACE}, {"name": "x.yaml", "object": ACCOUNT}]}, "unique"),
        ({"files": [], "objects": []}, "mutually exclusive"),
        ({}, "one of the following is required: objects, files"),
    ],
    ids=["secret", "directory", "extension", "reserved", "unique", "both", "neither"],
)
def test_refuses_bad_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: dict[str, t.Any], message: str
) -> None:
    result = run_module(capsys, path=str(tmp_path / "out"), **args)
    assert result["rc"] == 1 and result["failed"] is True and message in result["msg"]
    assert not (tmp_path / "out").exists()
