"""Fail when a role's meta/argument_specs.yml and defaults/main.yml drift apart.

Every public input in defaults/main.yml must be documented in the entry point
`main` of argument_specs (and the other way round, except options marked
required, which have no default), with the same default value where the
default is a literal (Jinja expressions are compared as strings).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def check_role(role: Path) -> list[str]:
    problems: list[str] = []
    specs_file = role / "meta" / "argument_specs.yml"
    defaults_file = role / "defaults" / "main.yml"
    if not specs_file.is_file():
        return [f"{role.name}: meta/argument_specs.yml is missing"]
    specs = yaml.safe_load(specs_file.read_text()) or {}
    options = ((specs.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.is_file() else {}
    defaults = defaults or {}
    for name in sorted(set(defaults) - set(options)):
        problems.append(f"{role.name}: default {name} is not in meta/argument_specs.yml")
    for name, spec in sorted(options.items()):
        spec = spec or {}
        if name not in defaults:
            if not spec.get("required", False):
                problems.append(f"{role.name}: option {name} is neither required nor in defaults/main.yml")
            continue
        if spec.get("required", False):
            problems.append(f"{role.name}: option {name} is required but has a default in defaults/main.yml")
        if "default" in spec and spec["default"] != defaults[name]:
            problems.append(
                f"{role.name}: option {name} default {spec['default']!r} != defaults/main.yml {defaults[name]!r}"
            )
        if "description" not in spec:
            problems.append(f"{role.name}: option {name} has no description")
        if "type" not in spec:
            problems.append(f"{role.name}: option {name} has no type")
        if spec.get("type") == "list" and "elements" not in spec:
            problems.append(f"{role.name}: list option {name} has no elements")
    return problems


def main() -> int:
    roles_dir = Path(__file__).resolve().parent.parent / "roles"
    roles = sorted(p for p in roles_dir.iterdir() if p.is_dir()) if roles_dir.is_dir() else []
    problems = [problem for role in roles for problem in check_role(role)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"argument_specs: {len(roles)} roles checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
