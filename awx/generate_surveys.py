"""Write the AWX / Automation Platform survey specs (awx/surveys/*.json) from the roles' argument specs.

    python awx/generate_surveys.py          # rewrite awx/surveys/*.json
    python awx/generate_surveys.py --check  # exit 1 when a file differs from what it would write

Which inputs each job template asks for is the table SURVEYS below; everything else about a
question comes from meta/argument_specs.yml: its type, choices, default and description, and
``no_log`` (the question becomes a password). A ``zerotrust_aks_*`` input of the stack role is
its own option; an input a playbook hands to a role (``entra_app_display_name:
"{{ zerotrust_aks_app_display_name | default('...') }}"`` in the play's or a task's ``vars``)
takes the spec of the option it feeds, and the playbook's default. Surveys have no boolean,
list or dict questions: such inputs stay in the inventory (docs/AWX.md, "Surveys").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import typing as t
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SURVEY_DIR = REPO / "awx" / "surveys"

# "{{ zerotrust_aks_x }}" or "{{ zerotrust_aks_x | default(<literal>) }}", nothing else.
_REFERENCE = re.compile(r"^\{\{\s*(?P<var>zerotrust_aks_\w+)\s*(?:\|\s*default\((?P<default>[^()]*)\)\s*)?\}\}$")
_MARKUP = re.compile(r"[ICBMOV]\(([^)]*)\)")


@dataclasses.dataclass(frozen=True)
class Question:
    """One survey question: the variable, its label, and whether the job cannot run without it
    (the stack role or a preflight fails on an empty value that argument specs cannot mark)."""

    variable: str
    label: str
    required: bool = False


@dataclasses.dataclass(frozen=True)
class Survey:
    playbook: str
    name: str
    description: str
    questions: tuple[Question, ...]


HOST = Question("zerotrust_aks_host", "Site DNS name", required=True)
INSTANCE = Question("zerotrust_aks_instance", "Installation name")

# zerotrust_aks_platform is no question: playbooks/controller.yml sets it to aks in each job template's
# extra vars, and a survey default ("local") would override that on every launch.
SURVEYS: dict[str, Survey] = {
    "azure": Survey(
        "playbooks/azure.yml",
        "zerotrust.aks azure layer",
        "Entra app registration, Key Vault and its secrets, identity access, the AKS Key Vault add-on.",
        (
            HOST,
            INSTANCE,
            Question("zerotrust_aks_resource_group", "Resource group of the AKS cluster", required=True),
            Question("zerotrust_aks_cluster_name", "AKS cluster name", required=True),
            Question("zerotrust_aks_keyvault_name", "Key Vault name", required=True),
            Question("zerotrust_aks_identity_mode", "Identity that reads the Key Vault secrets"),
            Question("zerotrust_aks_client_auth", "How oauth2-proxy authenticates to Entra ID"),
            Question("zerotrust_aks_app_display_name", "Display name of the app registration"),
            Question("zerotrust_aks_client_secret_expiry_days", "Client secret lifetime (days)"),
            Question("zerotrust_aks_client_secret_renew_days", "Renew the client secret this many days before expiry"),
        ),
    ),
    "cluster": Survey(
        "playbooks/cluster.yml",
        "zerotrust.aks cluster layer",
        "The edge, oauth2-proxy, the demo apps and one protected route per app.",
        (
            HOST,
            INSTANCE,
            Question("zerotrust_aks_edge", "Edge (gateway-api is recommended for new installs)"),
            Question("zerotrust_aks_ingress_controller", "Ingress controller"),
            Question("zerotrust_aks_tls_mode", "TLS certificate"),
            Question("zerotrust_aks_session_lifetime", "Session lifetime (Go duration)"),
            Question("zerotrust_aks_session_refresh", "Session refresh (Go duration)"),
            Question("zerotrust_aks_client_secret", "OIDC client secret (local platform only)"),
            Question("zerotrust_aks_cookie_secret", "Cookie secret (local platform only; generated when empty)"),
        ),
    ),
    "verify": Survey(
        "playbooks/verify.yml",
        "zerotrust.aks verify",
        "Read-only smoke checks of a deployment.",
        (HOST, INSTANCE),
    ),
}


def load_yaml(path: Path) -> t.Any:
    return yaml.safe_load(path.read_text())


def role_options() -> dict[str, dict[str, dict[str, t.Any]]]:
    """role name -> option name -> spec, entry point main."""
    options = {}
    for specs_file in sorted(REPO.glob("roles/*/meta/argument_specs.yml")):
        specs = load_yaml(specs_file)["argument_specs"]["main"].get("options") or {}
        options[specs_file.parent.parent.name] = specs
    return options


def _feeds(
    value: t.Any, option: str, spec: dict[str, t.Any], found: dict[str, tuple[str, dict[str, t.Any], str | None]]
) -> None:
    """Record every zerotrust_aks_* variable a role option's value refers to (dict values too:
    they inherit the option's no_log)."""
    if isinstance(value, dict):
        leaf = {"type": "str", "no_log": bool(spec.get("no_log")), "description": spec.get("description", "")}
        for sub in value.values():
            _feeds(sub, option, leaf, found)
        return
    if isinstance(value, str) and (match := _REFERENCE.match(value.strip())):
        found.setdefault(match["var"], (option, spec, match["default"]))


def playbook_references(
    playbook: str, options: dict[str, dict[str, dict[str, t.Any]]]
) -> dict[str, tuple[str, dict[str, t.Any], str | None]]:
    """variable -> (role option it feeds, that option's spec, the playbook's default literal or None)."""
    by_option = {name: spec for specs in options.values() for name, spec in specs.items()}
    found: dict[str, tuple[str, dict[str, t.Any], str | None]] = {}
    for play in load_yaml(REPO / playbook) or []:
        scopes = [play.get("vars") or {}]
        for section in ("pre_tasks", "tasks", "post_tasks"):
            scopes += [task.get("vars") or {} for task in play.get(section) or []]
        for scope in scopes:
            for option, value in scope.items():
                if option in by_option:
                    _feeds(value, option, by_option[option], found)
    return found


def describe(spec: dict[str, t.Any]) -> str:
    text = spec.get("description", "")
    if isinstance(text, list):
        text = " ".join(text)
    return _MARKUP.sub(r"\1", str(text)).strip()


def question(q: Question, playbook: str, options: dict[str, dict[str, dict[str, t.Any]]]) -> dict[str, t.Any]:
    stack = options["stack"]
    if q.variable in stack:
        spec, default = stack[q.variable], stack[q.variable].get("default")
    else:
        references = playbook_references(playbook, options)
        if q.variable not in references:
            raise SystemExit(f"{playbook}: {q.variable} is neither a stack input nor handed to a role option")
        _option, spec, literal = references[q.variable]
        default = yaml.safe_load(literal) if literal is not None else spec.get("default")
    kind = spec.get("type", "str")
    if isinstance(default, str) and "{{" in default:
        default = ""
    item: dict[str, t.Any] = {
        "question_name": q.label,
        "question_description": describe(spec),
        "variable": q.variable,
        "required": bool(spec.get("required")) or q.required,
    }
    if kind == "str" and spec.get("no_log"):
        item.update(type="password", default="")
    elif kind == "str" and spec.get("choices"):
        item.update(
            type="multiplechoice", choices=list(spec["choices"]), default=default if default is not None else ""
        )
    elif kind == "str":
        item.update(type="text", default=default if default is not None else "")
    elif kind == "int":
        item.update(type="integer", default=default if default is not None else "")
    else:
        raise SystemExit(f"{playbook}: {q.variable} is of type {kind}, which a survey cannot ask for")
    return item


def survey_spec(survey: Survey, options: dict[str, dict[str, dict[str, t.Any]]]) -> dict[str, t.Any]:
    return {
        "name": survey.name,
        "description": survey.description,
        "spec": [question(q, survey.playbook, options) for q in survey.questions],
    }


def render_all() -> dict[Path, str]:
    options = role_options()
    return {
        SURVEY_DIR / f"{key}.json": json.dumps(survey_spec(survey, options), indent=2) + "\n"
        for key, survey in SURVEYS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail when a survey file is not what would be written")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render_all().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.relative_to(REPO))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale survey specs (run python awx/generate_surveys.py): {', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
