"""Job templates as code: the survey specs (awx/surveys/*.json) and playbooks/controller.yml, without a controller.

- Drift: every survey file is what awx/generate_surveys.py makes from today's argument specs.
- AWX's rules: each spec passes a port of AWX's own validation of a survey spec
  (awx/api/views/__init__.py ``JobTemplateSurveySpec._validate_spec_data`` and the type table
  ``SURVEY_TYPE_MAPPING`` in awx/main/constants.py), and its defaults pass the launch-time checks
  (awx/main/models/mixins.py ``_survey_element_validation``). The port is tested on broken specs.
- The roles: each question agrees with the stack role's argument spec (type, choices, default,
  required, no_log -> password) or with the role option its playbook hands it to; the defaults
  of the cluster survey render the cluster layer.
- controller.yml: syntax check and ansible-lint (it was never run against a live controller).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml
from support.playbook import REPO, VENV_BIN

SURVEYS = sorted((REPO / "awx" / "surveys").glob("*.json"))
STACK = yaml.safe_load((REPO / "roles" / "stack" / "meta" / "argument_specs.yml").read_text())["argument_specs"][
    "main"
]["options"]

# awx/main/constants.py
SURVEY_TYPE_MAPPING: dict[str, type | tuple[type, ...]] = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": (float, int),
}
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_generator() -> t.Any:
    spec = importlib.util.spec_from_file_location("generate_surveys", REPO / "awx" / "generate_surveys.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def awx_spec_errors(new_spec: t.Any) -> list[str]:
    """AWX's _validate_spec_data (first error only there; all of them here), without the
    ``$encrypted$`` handling of existing passwords. Plus: a variable must be a valid Ansible
    variable name, which AWX leaves to ansible-playbook (an invalid one fails every launch)."""
    errors = []
    if not isinstance(new_spec, dict):
        return ["survey spec is not a JSON object"]
    for field, expect_type in (("name", str), ("description", str), ("spec", list)):
        if field not in new_spec:
            errors.append(f"Field '{field}' is missing from survey spec.")
        elif not isinstance(new_spec[field], expect_type):
            errors.append(f"Expected {expect_type.__name__} for field '{field}'.")
    if errors:
        return errors
    if len(new_spec["spec"]) < 1:
        return ["'spec' doesn't contain any items."]
    variables: set[str] = set()
    for idx, item in enumerate(new_spec["spec"]):
        if not isinstance(item, dict):
            errors.append(f"Survey question {idx} is not a json object.")
            continue
        missing = False
        for field in ("type", "question_name", "variable", "required"):
            if field not in item:
                errors.append(f"'{field}' missing from survey question {idx}")
                missing = True
            elif not isinstance(item[field], bool if field == "required" else str):
                errors.append(f"'{field}' in survey question {idx} has the wrong type")
                missing = True
        if missing:
            continue
        if item["variable"] in variables:
            errors.append(f"'variable' '{item['variable']}' duplicated in survey question {idx}.")
        variables.add(item["variable"])
        if not VARIABLE.match(item["variable"]):
            errors.append(f"'variable' '{item['variable']}' in survey question {idx} is no valid variable name")
        qtype = item["type"]
        if qtype not in SURVEY_TYPE_MAPPING:
            errors.append(f"'{qtype}' in survey question {idx} is not one of the allowed question types.")
            continue
        default = item.get("default", "")
        # bool is an int in Python, and AWX's isinstance accepts it; a survey never means it.
        if default != "" and (not isinstance(default, SURVEY_TYPE_MAPPING[qtype]) or isinstance(default, bool)):
            errors.append(f"Default value {default!r} in survey question {idx} has the wrong type for {qtype}.")
        for key in ("min", "max"):
            if key in item and item[key] is not None and not isinstance(item[key], int):
                errors.append(f"The {key} limit in survey question {idx} expected to be integer.")
        if qtype in ("multiselect", "multiplechoice"):
            if "choices" not in item:
                errors.append(f"Survey question {idx} of type {qtype} must specify choices.")
                continue
            choices = item["choices"]
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip()]
            if "default" in item:
                defaults = (
                    [c for c in item["default"].splitlines() if c.strip()]
                    if isinstance(item["default"], str)
                    else item["default"]
                )
                if qtype == "multiplechoice" and len(defaults) > 1:
                    errors.append("Multiple Choice (Single Select) can only have one default value.")
                if any(d not in choices for d in defaults):
                    errors.append("Default choice must be answered from the choices listed.")
        if isinstance(default, str) and default.startswith("$encrypted$") and qtype != "password":
            errors.append(f"$encrypted$ is a reserved keyword for password question defaults, question {idx}.")
    return errors


def launch_errors(item: dict[str, t.Any]) -> list[str]:
    """mixins._survey_element_validation for a launch that takes the question's default."""
    if "default" not in item or item["default"] == "":
        return [f"'{item['variable']}' value missing"] if item["required"] and item["type"] != "password" else []
    value = item["default"]
    if item["type"] in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"{item['variable']}: expected a string"]
        if item.get("min") not in ("", None) and len(value) < int(item["min"]):
            return [f"{item['variable']}: too short"]
        if item.get("max") not in ("", None) and len(value) > int(item["max"]):
            return [f"{item['variable']}: too long"]
    if item["type"] == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{item['variable']}: expected an integer"]
    return []


def test_survey_files_are_what_the_generator_makes() -> None:
    generator = load_generator()
    assert SURVEYS, "awx/surveys holds no survey"
    rendered = generator.render_all()
    assert sorted(rendered) == SURVEYS
    for path, text in rendered.items():
        assert path.read_text() == text, f"{path.name} is stale: run python awx/generate_surveys.py"
    assert generator.main(["--check"]) == 0


@pytest.mark.parametrize("path", SURVEYS, ids=lambda p: p.stem)
def test_spec_passes_awx_rules(path: Path) -> None:
    spec = json.loads(path.read_text())
    assert awx_spec_errors(spec) == []
    for item in spec["spec"]:
        errors = launch_errors(item)
        if item["required"] and item.get("default", "") == "":
            assert errors == [f"'{item['variable']}' value missing"], item
        else:
            assert errors == [], item


BROKEN: list[tuple[str, t.Callable[[dict[str, t.Any]], None], str]] = [
    ("no spec items", lambda s: s.update(spec=[]), "doesn't contain any items"),
    ("no name", lambda s: s.pop("name"), "Field 'name' is missing"),
    ("unknown type", lambda s: s["spec"][0].update(type="boolean"), "not one of the allowed"),
    ("required as a string", lambda s: s["spec"][0].update(required="yes"), "'required' in survey question 0"),
    ("duplicate variable", lambda s: s["spec"].append(copy.deepcopy(s["spec"][0])), "duplicated"),
    ("integer default a string", lambda s: s["spec"][0].update(type="integer", default="180"), "wrong type"),
    ("integer default a bool", lambda s: s["spec"][0].update(type="integer", default=True), "wrong type"),
    ("min not an integer", lambda s: s["spec"][0].update(min="1"), "min limit"),
    ("choice without choices", lambda s: s["spec"][0].update(type="multiplechoice"), "must specify choices"),
    (
        "default not a choice",
        lambda s: s["spec"][0].update(type="multiplechoice", choices=["a", "b"], default="c"),
        "Default choice",
    ),
    (
        "two defaults",
        lambda s: s["spec"][0].update(type="multiplechoice", choices="a\nb", default="a\nb"),
        "only have one default",
    ),
    ("bad variable name", lambda s: s["spec"][0].update(variable="zerotrust-aks-host"), "no valid variable name"),
]


@pytest.mark.parametrize(("case", "breaks", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_awx_rules_refuse_broken_specs(case: str, breaks: t.Callable[[dict[str, t.Any]], None], message: str) -> None:
    spec = json.loads(SURVEYS[0].read_text())
    breaks(spec)
    errors = awx_spec_errors(spec)
    assert any(message in e for e in errors), f"{case}: {errors}"


def role_option_for(playbook: str, variable: str) -> tuple[dict[str, t.Any], t.Any]:
    """The argument spec of the role option a playbook hands ``variable`` to, and the playbook's default."""
    text = (REPO / playbook).read_text()
    match = re.search(rf"^\s*(\w+):\s*\"\{{\{{ {variable}(?: \| default\(([^()]*)\))? \}}\}}\"$", text, re.MULTILINE)
    assert match, f"{playbook} hands {variable} to no role option"
    option, literal = match.groups()
    for specs_file in REPO.glob("roles/*/meta/argument_specs.yml"):
        options = yaml.safe_load(specs_file.read_text())["argument_specs"]["main"]["options"]
        if option in options:
            return options[option], yaml.safe_load(literal) if literal else options[option].get("default")
    raise AssertionError(f"{option} is no option of any role")


def playbook_of(path: Path) -> str:
    return f"playbooks/{path.stem}.yml"


@pytest.mark.parametrize("path", SURVEYS, ids=lambda p: p.stem)
def test_questions_agree_with_argument_specs(path: Path) -> None:
    kinds = {"text": "str", "password": "str", "multiplechoice": "str", "integer": "int"}
    for item in json.loads(path.read_text())["spec"]:
        variable = item["variable"]
        if variable in STACK:
            spec, default = STACK[variable], STACK[variable].get("default")
        elif variable in ("zerotrust_aks_client_secret", "zerotrust_aks_cookie_secret"):
            # cluster.yml hands them to manifests_secret_values, a no_log dict.
            text = (REPO / playbook_of(path)).read_text()
            assert f"{{{{ {variable} | default('') }}}}" in text
            manifests = yaml.safe_load((REPO / "roles" / "manifests" / "meta" / "argument_specs.yml").read_text())
            parent = manifests["argument_specs"]["main"]["options"]["manifests_secret_values"]
            assert parent.get("no_log") is True
            spec, default = {"type": "str", "no_log": True}, ""
        else:
            spec, default = role_option_for(playbook_of(path), variable)
        assert kinds[item["type"]] == spec.get("type", "str"), variable
        assert (item["type"] == "password") == bool(spec.get("no_log")), variable
        assert item.get("choices") == spec.get("choices"), variable
        if not (isinstance(default, str) and "{{" in default):
            assert item["default"] == (default if default is not None else ""), variable
        if spec.get("required"):
            assert item["required"], variable
        assert item["required"] or item["type"] == "password" or item["default"] != "", (
            f"{variable}: optional but without a default, a launch would pass nothing"
        )


def test_every_question_is_read_by_its_playbook() -> None:
    for path in SURVEYS:
        text = (REPO / playbook_of(path)).read_text()
        for item in json.loads(path.read_text())["spec"]:
            assert item["variable"] in STACK or item["variable"] in text, f"{path.name}: {item['variable']}"


def test_cluster_survey_defaults_render_the_cluster_layer(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    """The answers a user gets by accepting every default (and naming the site) are valid input."""
    answers = {
        item["variable"]: item["default"]
        for item in json.loads((REPO / "awx" / "surveys" / "cluster.json").read_text())["spec"]
        if item.get("default") not in ("", None)
    }
    answers.update(zerotrust_aks_host="colors.example.com", zerotrust_aks_render_dir=str(tmp_path / "out"))
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/cluster.yml", "-e", json.dumps(answers)],
        cwd=REPO,
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    assert any((tmp_path / "out").rglob("*.yaml"))


@pytest.mark.parametrize(
    "cmd",
    [
        ["ansible-playbook", "--syntax-check", "playbooks/controller.yml"],
        ["ansible-lint", "--strict", "playbooks/controller.yml"],
    ],
    ids=["syntax-check", "ansible-lint"],
)
def test_controller_playbook_is_clean(cmd: list[str], ansible_env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(VENV_BIN / cmd[0]), *cmd[1:]],
        cwd=REPO,
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_controller_uploads_every_survey() -> None:
    text = (REPO / "playbooks" / "controller.yml").read_text()
    layers = yaml.safe_load(text)[0]["vars"]["_awx_layers"]
    assert sorted(layer["name"] for layer in layers) == sorted(p.stem for p in SURVEYS)
    assert "lookup('ansible.builtin.file', '../awx/surveys/' ~ item.name ~ '.json')" in text
