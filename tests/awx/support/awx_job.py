"""What AWX does around ansible-runner for a job, for tests/awx/test_runner_jobs.py (see its docstring).

Read from AWX's source (awx/main/tasks/jobs.py: BaseTask.build_private_data_dir, RunJob.build_env,
build_extra_vars_file, write_inventory_file; awx/playbooks/project_update.yml) and
ansible-runner's private data dir layout (env/envvars, env/extravars, env/settings, env/cmdline,
inventory/, project/; artifacts/<ident>/job_events).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import typing as t
from pathlib import Path

import yaml

# AWX's ANSIBLE_* settings (awx/settings/defaults.py), put into every job's environment.
AWX_ANSIBLE_SETTINGS = {
    "ANSIBLE_FORCE_COLOR": "True",
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
}
DEFAULT_COLLECTIONS_PATHS = ("~/.ansible/collections", "/usr/share/ansible/collections")
DEFAULT_ROLES_PATHS = ("~/.ansible/roles", "/usr/share/ansible/roles", "/etc/ansible/roles")
AZURE_CREDENTIAL = {
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_CLIENT_ID",
    "AZURE_SECRET",
    "AZURE_TENANT",
    "AZURE_CLOUD_ENVIRONMENT",
}
K8S_CREDENTIAL = {"K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_VERIFY_SSL", "K8S_AUTH_SSL_CA_CERT"}


class Credential(t.NamedTuple):
    """What a credential injects: environment variables, and files (variable -> content)."""

    env: dict[str, str]
    files: dict[str, str]


class Job(t.NamedTuple):
    """One finished ansible-runner job: its private data dir, status and event stream."""

    ident: str
    private_data_dir: Path
    status: str
    events: list[dict[str, t.Any]]
    output: str

    @property
    def artifact_dir(self) -> Path:
        return self.private_data_dir / "artifacts" / self.ident

    @property
    def stats(self) -> dict[str, t.Any]:
        found = [e["event_data"] for e in self.events if e.get("event") == "playbook_on_stats"]
        assert len(found) == 1, f"job {self.ident}: {len(found)} playbook_on_stats events\n{self.describe()}"
        return t.cast(dict[str, t.Any], found[0])

    @property
    def artifacts(self) -> dict[str, t.Any]:
        """What AWX stores as the job's artifacts: the set_stats data of the run."""
        return t.cast(dict[str, t.Any], self.stats.get("artifact_data") or {})

    @property
    def changed(self) -> int:
        return sum(self.stats["changed"].values())

    def describe(self) -> str:
        return f"job {self.ident} ({self.status}) in {self.private_data_dir}\n{self.output[-12000:]}"


def event_text(event: t.Mapping[str, t.Any]) -> str:
    return str(event.get("stdout") or "")


class Controller:
    """What AWX does around ansible-runner for each job, for one project, inventory and credentials."""

    def __init__(
        self,
        root: Path,
        project_cache: Path,
        venv_bin: Path,
        task_env: dict[str, str],
        credentials: dict[str, Credential],
        inventory_vars: dict[str, t.Any],
    ) -> None:
        self.root = root
        self.project_cache = project_cache  # project/ and requirements_collections/ after the project update
        self.venv_bin = venv_bin  # ansible-runner and the ansible it runs (the execution environment)
        self.task_env = task_env  # the "Extra Environment Variables" setting (AWX_TASK_ENV)
        self.credentials = credentials
        self.inventory_vars = inventory_vars
        self.home = root / "home"  # the runner's HOME: no .kube, no .ansible
        self.home.mkdir(exist_ok=True)
        self.revision = git(project_cache / "project", "rev-parse", "HEAD")
        self.jobs: list[Job] = []

    def run(self, playbook: str, extra_vars: t.Mapping[str, t.Any], credentials: t.Sequence[str]) -> Job:
        """One job of a job template: PLAYBOOK with the named CREDENTIALS and EXTRA_VARS."""
        ident = str(len(self.jobs) + 1)
        pdd = self.root / f"awx_{ident}_job"
        (pdd / "env").mkdir(parents=True)
        (pdd / "inventory").mkdir()
        for folder in ("project", "requirements_collections"):
            shutil.copytree(self.project_cache / folder, pdd / folder, symlinks=True)
        injected: dict[str, str] = {}
        for name in credentials:
            credential = self.credentials[name]
            injected.update(credential.env)
            # A file input (the CA certificate) is written under env/ and the variable names it.
            for variable, content in credential.files.items():
                path = pdd / "env" / f"tmp_{name}_{variable.lower()}"
                path.write_text(content)
                injected[variable] = str(path)
        # requirements_* first, then the project's ansible.cfg value, then the defaults (RunJob.build_env).
        collections = ":".join([str(pdd / "requirements_collections"), "build/collections", *DEFAULT_COLLECTIONS_PATHS])
        roles = ":".join([str(pdd / "requirements_roles"), *DEFAULT_ROLES_PATHS])
        envvars = {
            **AWX_ANSIBLE_SETTINGS,
            **self.task_env,
            "AWX_PRIVATE_DATA_DIR": str(pdd),
            "JOB_ID": ident,
            "INVENTORY_ID": "1",
            "PROJECT_REVISION": self.revision,
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_COLLECTIONS_PATHS": collections,
            "ANSIBLE_COLLECTIONS_PATH": collections,
            "ANSIBLE_ROLES_PATH": roles,
            **injected,
        }
        (pdd / "env" / "envvars").write_text(yaml.safe_dump(envvars))
        (pdd / "env" / "extravars").write_text(yaml.safe_dump(dict(extra_vars)))
        (pdd / "env" / "settings").write_text(json.dumps({"job_timeout": 900, "suppress_ansible_output": True}))
        (pdd / "env" / "cmdline").write_text("-u root -vvv")
        inventory = {
            "all": {"hosts": ["localhost"], "vars": self.inventory_vars},
            "_meta": {"hostvars": {"localhost": {}}},
        }
        hosts = pdd / "inventory" / "hosts"
        hosts.write_text(f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(inventory)!r})\n")
        hosts.chmod(0o700)
        # The runner's own environment is minimal, so that the job sees envvars and nothing of
        # this test process (no KUBECONFIG, no AZURE_* of the developer).
        base_env = {"PATH": f"{self.venv_bin}:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8"}
        done = subprocess.run(
            [str(self.venv_bin / "ansible-runner"), "run", str(pdd), "-p", playbook, "--ident", ident],
            env=base_env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        artifact_dir = pdd / "artifacts" / ident
        status_file = artifact_dir / "status"
        status = (
            status_file.read_text().strip() if status_file.exists() else f"no status (runner exit {done.returncode})"
        )
        events = [json.loads(p.read_text()) for p in sorted((artifact_dir / "job_events").glob("*.json"))]
        events.sort(key=lambda e: int(e.get("counter", 0)))
        output = "\n".join(filter(None, map(event_text, events))) + f"\n--- runner ---\n{done.stdout}\n{done.stderr}"
        job = Job(ident, pdd, status, events, output)
        self.jobs.append(job)
        return job


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()


def project_update(repository: Path, cache: Path, venv_bin: Path) -> None:
    """AWX's project update: a plain checkout into CACHE/project (no bootstrap, no build/ link),
    then ``ansible-galaxy collection install -r collections/requirements.yml`` into
    CACHE/requirements_collections, run from the checkout."""
    git(cache, "clone", "--quiet", "--no-hardlinks", str(repository), str(cache / "project"))
    requirements = cache / "project" / "collections" / "requirements.yml"
    assert requirements.exists(), "collections/requirements.yml is missing: AWX's project update would install nothing"
    env = {
        "PATH": f"{venv_bin}:/usr/bin:/bin",
        "HOME": str(cache / "home"),
        "LANG": "C.UTF-8",
        "ANSIBLE_LOCAL_TEMP": str(cache / "tmp"),
    }
    target = cache / "requirements_collections"
    install = subprocess.run(
        [str(venv_bin / "ansible-galaxy"), "collection", "install", "-r", str(requirements), "-p", str(target)],
        cwd=cache / "project",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, f"project update failed\n{install.stdout}\n{install.stderr}"
