#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: manifest_files
short_description: Write Kubernetes objects to a folder, one YAML file per object
version_added: 0.1.0
description:
  - Writes each object of O(files) to O(path) as a YAML document with sorted keys, and removes
    the C(*.yaml) files in O(path) that are not in O(files), so the folder holds exactly the
    rendered objects (a GitOps folder, or input for schema tests).
  - Writes only files whose content changes, in one task, instead of one task per file.
  - Contacts no Kubernetes API server.
  - Refuses objects of kind C(Secret), which would put secret values into files.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details:
      - Reports the files it would write and remove.
  diff_mode:
    support: partial
    details:
      - The diff lists file names, not contents.
options:
  path:
    description:
      - Folder to write to. Created when missing.
    type: path
    required: true
  files:
    description:
      - The files to write, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - File name inside O(path), without directories; must end in C(.yaml).
        type: str
        required: true
      object:
        description:
          - The Kubernetes object.
        type: dict
        required: true
  prune:
    description:
      - Remove C(*.yaml) files in O(path) that are not listed in O(files).
    type: bool
    default: true
requirements:
  - PyYAML
notes:
  - The role C(zerotrust.aks.manifests) uses this module for its render mode.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Render two objects
  zerotrust.aks.manifest_files:
    path: /srv/gitops/cluster
    files:
      - name: 001-cluster-namespace-demo.yaml
        object:
          apiVersion: v1
          kind: Namespace
          metadata:
            name: demo
      - name: 002-demo-serviceaccount-demo.yaml
        object:
          apiVersion: v1
          kind: ServiceAccount
          metadata:
            name: demo
            namespace: demo
"""

RETURN = r"""
written:
  description: Files written (new or changed content).
  returned: success
  type: list
  elements: str
  sample: ["001-cluster-namespace-demo.yaml"]
removed:
  description: Files removed because no object is rendered to them any more.
  returned: success
  type: list
  elements: str
  sample: ["007-oauth2-proxy-secretproviderclass-oauth2-proxy.yaml"]
"""

import os
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR: Exception | None = None
except ImportError as error:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
    YAML_IMPORT_ERROR = error


def to_yaml(obj: dict[str, t.Any]) -> str:
    text: str = yaml.safe_dump(obj, default_flow_style=False, sort_keys=True, width=1000, allow_unicode=True)
    return "---\n" + text


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            files=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(name=dict(type="str", required=True), object=dict(type="dict", required=True)),
            ),
            prune=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))

    path: str = module.params["path"]
    files: list[dict[str, t.Any]] = module.params["files"]
    names = [item["name"] for item in files]
    for name in names:
        if os.path.basename(name) != name or not name.endswith(".yaml"):
            module.fail_json(msg=f"file name {name!r} must be a plain name ending in .yaml")
    if len(set(names)) != len(names):
        module.fail_json(msg="file names must be unique")
    secrets = [item["name"] for item in files if item["object"].get("kind") == "Secret"]
    if secrets:
        module.fail_json(msg="refusing to write Secrets to files: " + ", ".join(secrets))

    written: list[str] = []
    contents: dict[str, str] = {}
    for item in files:
        content = to_yaml(item["object"])
        target = os.path.join(path, item["name"])
        current = None
        if os.path.isfile(target):
            with open(target, encoding="utf-8") as handle:
                current = handle.read()
        if current != content:
            written.append(item["name"])
            contents[item["name"]] = content

    removed: list[str] = []
    if module.params["prune"] and os.path.isdir(path):
        removed = sorted(name for name in os.listdir(path) if name.endswith(".yaml") and name not in names)

    changed = bool(written or removed)
    if changed and not module.check_mode:
        os.makedirs(path, exist_ok=True)
        for name, content in contents.items():
            temporary = os.path.join(path, f".{name}.tmp")
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.replace(temporary, os.path.join(path, name))
        for name in removed:
            os.remove(os.path.join(path, name))

    module.exit_json(
        changed=changed,
        written=written,
        removed=removed,
        diff=dict(
            before="".join(f"removed {name}\n" for name in removed),
            after="".join(f"written {name}\n" for name in written),
        ),
    )


if __name__ == "__main__":
    main()
