"""zerotrust.aks.manifest_files from a playbook, as a GitOps user runs it: a render folder that also
holds the user's own files (a kustomization.yaml, notes) is rendered into again and again."""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
from pathlib import Path

import yaml

Runner = t.Callable[..., subprocess.CompletedProcess[str]]

PLAYBOOK = """
- name: Render two objects into a folder the user also keeps files in
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Render the objects
      zerotrust.aks.manifest_files:
        path: "{{ render_dir }}"
        objects:
          - apiVersion: v1
            kind: ServiceAccount
            metadata: {name: api, namespace: demo}
          - apiVersion: v1
            kind: Namespace
            metadata: {name: demo}
      register: render

    - name: Hand the result to the test
      ansible.builtin.copy:
        content: "{{ render | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      check_mode: false
      changed_when: false
"""

RENDERED = ["001-cluster-namespace-demo.yaml", "002-demo-serviceaccount-api.yaml"]
INDEX = ".zerotrust-aks-render.index"
USER_FILES = {
    "kustomization.yaml": (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n- 001-cluster-namespace-demo.yaml\n"
    ),
    "notes.yaml": "owner: platform-team\n",
}


def run(
    playbook_runner: Runner, playbook: Path, folder: Path, result_file: Path, *args: str
) -> tuple[str, dict[str, t.Any]]:
    completed = playbook_runner(playbook, "-e", f"render_dir={folder}", "-e", f"result_file={result_file}", *args)
    output = completed.stdout + completed.stderr
    return output, json.loads(result_file.read_text())


def recap_changed(output: str) -> int:
    match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert match, output
    return int(match.group(1))


def test_user_files_survive_renders_and_are_named(playbook_runner: Runner, tmp_path: Path) -> None:
    playbook = tmp_path / "render.yml"
    playbook.write_text(PLAYBOOK)
    folder = tmp_path / "gitops"
    folder.mkdir()
    for name, text in USER_FILES.items():
        (folder / name).write_text(text)
    result_file = tmp_path / "result.json"
    left_alone = f"left alone in {folder} (not written by this module): kustomization.yaml, notes.yaml"

    # Check mode reports the render and writes nothing.
    output, checked = run(playbook_runner, playbook, folder, result_file, "--check")
    assert checked["changed"] is True and checked["written"] == RENDERED, output
    assert sorted(p.name for p in folder.iterdir()) == sorted(USER_FILES)

    output, first = run(playbook_runner, playbook, folder, result_file)
    assert recap_changed(output) == 1
    assert first["written"] == first["files"] == RENDERED
    assert first["foreign_files"] == ["kustomization.yaml", "notes.yaml"]
    # The folder held .yaml files but no index: the module says it pruned nothing, and why.
    assert "holds .yaml files but no index" in output, output
    assert left_alone in output, output

    output, second = run(playbook_runner, playbook, folder, result_file)
    assert recap_changed(output) == 0
    assert second["changed"] is False and second["unchanged"] == RENDERED and second["removed"] == []
    assert second["foreign_files"] == ["kustomization.yaml", "notes.yaml"]
    assert left_alone in output, output
    assert "no index" not in output

    assert {name: (folder / name).read_text() for name in USER_FILES} == USER_FILES
    assert sorted(p.name for p in folder.iterdir()) == sorted([*USER_FILES, *RENDERED, INDEX])
    assert json.loads((folder / INDEX).read_text()) == {"format": 1, "files": RENDERED}
    assert yaml.safe_load((folder / RENDERED[1]).read_text())["metadata"] == {"name": "api", "namespace": "demo"}
