"""What AWX / Automation Platform needs besides a job run: the project update and the execution environment.

Project update (awx/playbooks/project_update.yml, AWX since Feb 2025): in the project folder,
``ansible-galaxy collection install -r collections/requirements.yml`` with
``ANSIBLE_COLLECTIONS_PATH`` set to the project's cache (only that), Galaxy as the
organization's Galaxy credentials say; here Galaxy is unreachable (an air-gapped controller).
Jobs then run with that cache first on ``ANSIBLE_COLLECTIONS_PATH`` (awx/main/tasks/jobs.py).

The project update runs in AWX's control plane execution environment. Whether ansible-galaxy
there sees the dependency collections decides if it asks Galaxy for them: the tests pin both
outcomes (docs/AWX.md, "Project").

Execution environment: ``ansible-builder create`` on execution-environment.yml (no container
engine here, so no ``build``), and the generated context checked: the pinned ansible-core and
ansible-runner, the collection tarball, and what ansible-builder's own introspection script makes
of the collection's meta/execution-environment.yml, requirements.txt and bindep.txt.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tarfile
import typing as t
from pathlib import Path

import pytest
import yaml
from support.playbook import REPO, VENV_BIN

BUNDLED = next((REPO / ".venv" / "lib").glob("python3.*/site-packages/ansible_collections"))
DEPENDENCIES = ("kubernetes.core", "azure.azcollection", "community.crypto")
PLAYBOOKS = (
    "site.yml",
    "playbooks/azure.yml",
    "playbooks/cluster.yml",
    "playbooks/verify.yml",
    "playbooks/teardown.yml",
)


def lock_versions() -> dict[str, str]:
    """name (lower case) -> version, from requirements/main.lock."""
    versions = {}
    for line in (REPO / "requirements" / "main.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            versions[name.strip().lower()] = version.strip()
    return versions


def unreachable_url() -> str:
    """A URL on which nothing listens: a port the kernel just handed out and that is closed again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain clone of this repository's HEAD, as AWX checks a project out: no bootstrap, no
    build/collections link."""
    dest = tmp_path_factory.mktemp("project") / "project"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], check=True, timeout=300)
    assert not (dest / "build").exists()
    return dest


def update_env(home: Path, collections_path: str, scan_sys_path: bool = True) -> dict[str, str]:
    """The environment of AWX's content install task, Galaxy unreachable."""
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANSIBLE_FORCE_COLOR": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_COLLECTIONS_PATH": collections_path,
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        # What an organization's Galaxy credential becomes (jobs.py RunProjectUpdate.build_env).
        "ANSIBLE_GALAXY_SERVER_LIST": "server0",
        "ANSIBLE_GALAXY_SERVER_SERVER0_URL": unreachable_url(),
    }
    if not scan_sys_path:
        env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    return env


def project_update(
    clone: Path, tmp: Path, collections_path: str, scan_sys_path: bool = True
) -> subprocess.CompletedProcess[str]:
    home = tmp / "home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    cmd = [
        str(VENV_BIN / "ansible-galaxy"),
        "collection",
        "install",
        "-r",
        str(clone / "collections" / "requirements.yml"),
    ]
    return run(cmd, clone, update_env(home, collections_path, scan_sys_path))


@pytest.fixture(scope="module")
def installed(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's cache after AWX's content install: dependencies from the ``ansible`` package
    on Python's path (this project's execution environment, and .venv)."""
    tmp = tmp_path_factory.mktemp("update")
    stage = tmp / "requirements_collections"
    result = project_update(clone, tmp, str(stage))
    assert result.returncode == 0, f"project update failed\n{result.stdout}\n{result.stderr}"
    assert "zerotrust.aks:0.1.0 was installed successfully" in result.stdout, result.stdout
    for dependency in DEPENDENCIES:
        assert re.search(rf"'{re.escape(dependency)}:[0-9.]+' is already installed", result.stdout), result.stdout
    assert (stage / "ansible_collections" / "zerotrust" / "aks" / "MANIFEST.json").is_file()
    # Only zerotrust.aks went into the cache: nothing was downloaded.
    assert sorted(p.name for p in (stage / "ansible_collections").iterdir()) == ["zerotrust"]
    return stage


def job_env(clone: Path, stage: Path) -> dict[str, str]:
    """ANSIBLE_COLLECTIONS_PATH as AWX builds it for a job: the cache, the project's ansible.cfg
    value (build/collections, absent in a clone), the defaults. The bundled collections come from
    Python's path."""
    home = stage.parent / "job-home"
    home.mkdir(exist_ok=True)
    env = update_env(home, f"{stage}:build/collections:{home}/.ansible/collections:/usr/share/ansible/collections")
    return env


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_job_templates_resolve_the_collection_from_the_project_update(
    clone: Path, installed: Path, playbook: str
) -> None:
    result = run([str(VENV_BIN / "ansible-playbook"), "--syntax-check", playbook], clone, job_env(clone, installed))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_roles_come_from_the_project_cache(clone: Path, installed: Path) -> None:
    result = run([str(VENV_BIN / "ansible-doc"), "-t", "role", "zerotrust.aks.stack"], clone, job_env(clone, installed))
    assert result.returncode == 0, result.stderr
    assert f"({installed}/ansible_collections/zerotrust/aks)" in result.stdout


def test_without_the_project_update_the_role_is_not_found(clone: Path, tmp_path: Path) -> None:
    """The bug of issue 10 (a clone without build/collections), so the tests above can fail."""
    stage = tmp_path / "empty"
    stage.mkdir()
    result = run([str(VENV_BIN / "ansible-playbook"), "--syntax-check", "site.yml"], clone, job_env(clone, stage))
    assert result.returncode != 0
    assert "zerotrust.aks" in result.stdout + result.stderr


@pytest.fixture()
def ee_collections(tmp_path: Path) -> Path:
    """An execution environment's /usr/share/ansible/collections holding the dependencies."""
    root = tmp_path / "usr-share-ansible-collections"
    for dependency in DEPENDENCIES:
        namespace, name = dependency.split(".")
        (root / "ansible_collections" / namespace).mkdir(parents=True, exist_ok=True)
        (root / "ansible_collections" / namespace / name).symlink_to(BUNDLED / namespace / name)
    return root


def test_dependencies_only_in_usr_share_are_asked_of_galaxy(clone: Path, tmp_path: Path, ee_collections: Path) -> None:
    """Without the ``ansible`` package on Python's path, AWX's narrowed ANSIBLE_COLLECTIONS_PATH
    hides /usr/share/ansible/collections from ansible-galaxy: it asks Galaxy for the dependencies,
    and offline the project update fails. This is what docs/AWX.md tells air-gapped users."""
    result = project_update(clone, tmp_path, str(tmp_path / "stage"), scan_sys_path=False)
    assert result.returncode != 0, result.stdout
    assert "Unknown error when attempting to call Galaxy" in result.stderr, result.stderr


def test_dependencies_on_the_collections_path_are_used_offline(
    clone: Path, tmp_path: Path, ee_collections: Path
) -> None:
    result = project_update(clone, tmp_path, f"{tmp_path / 'stage'}:{ee_collections}", scan_sys_path=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for dependency in DEPENDENCIES:
        assert f"'{dependency}:" in result.stdout and "is already installed" in result.stdout, result.stdout


# --- execution environment -------------------------------------------------------------------


def galaxy_version() -> str:
    return str(yaml.safe_load((REPO / "galaxy.yml").read_text())["version"])


@pytest.fixture(scope="module")
def ee_definition() -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], yaml.safe_load((REPO / "execution-environment.yml").read_text()))


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ansible-builder create`` as docs/AWX.md tells users to run it, in a copy of the
    definition with the collection tarball built next to it."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(REPO / "execution-environment.yml", work / "execution-environment.yml")
    build = run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "build",
            "--force",
            "--output-path",
            str(work / "build" / "ee"),
            str(REPO),
        ],
        work,
        {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(work)},
    )
    assert build.returncode == 0, build.stderr
    create = run(
        [
            str(VENV_BIN / "ansible-builder"),
            "create",
            "-f",
            "execution-environment.yml",
            "-c",
            "context",
            "--output-filename",
            "Containerfile",
        ],
        work,
        {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(work)},
    )
    assert create.returncode == 0, f"{create.stdout}\n{create.stderr}"
    assert "No matches" not in create.stdout + create.stderr, "an additional build file is missing"
    return work / "context"


def test_containerfile_pins_what_the_suite_runs(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text()
    lock = lock_versions()
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"$', containerfile, re.MULTILINE)
    assert refs, containerfile
    assert refs.group(1).split() == [
        f"ansible-core=={lock['ansible-core']}",
        f"ansible-runner=={lock['ansible-runner']}",
    ]
    # The dependency collections, in the versions the suite verifies.
    assert (
        f"pip install --no-cache-dir ansible=={lock['ansible']} ansible-core=={lock['ansible-core']}" in containerfile
    )
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert re.search(r"^FROM \$EE_BASE_IMAGE AS base$", containerfile, re.MULTILINE)
    assert "introspect.py introspect" in containerfile


def test_the_collection_goes_in_from_its_tarball(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text()
    tarball = context / "_build" / "collections" / f"zerotrust-aks-{galaxy_version()}.tar.gz"
    assert tarball.is_file(), "the tarball's name in execution-environment.yml does not follow galaxy.yml's version"
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements == {"collections": [{"name": f"/build/collections/{tarball.name}", "type": "file"}]}
    assert "COPY _build /build" in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        for member in ("meta/execution-environment.yml", "requirements.txt", "bindep.txt"):
            assert member in names
            extracted = archive.extractfile(member)
            assert extracted is not None
            assert extracted.read().decode() == (REPO / member).read_text(), f"{member} in the tarball is stale"


def requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_introspection_finds_the_collections_requirements(context: Path, tmp_path: Path) -> None:
    """ansible-builder's own introspect.py (from the context) on the tarball installed as the
    galaxy stage installs it: every line of requirements.txt and bindep.txt comes out."""
    tarball = next((context / "_build" / "collections").glob("*.tar.gz"))
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "c")}
    install = run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "-p",
            str(tmp_path / "c"),
            str(tarball),
        ],
        tmp_path,
        env,
    )
    assert install.returncode == 0, install.stderr
    result = run(
        [
            str(VENV_BIN / "python"),
            str(context / "_build" / "scripts" / "introspect.py"),
            "introspect",
            "--write-pip",
            str(tmp_path / "pip.txt"),
            "--write-bindep",
            str(tmp_path / "bindep.txt"),
            str(tmp_path / "c"),
        ],
        tmp_path,
        env,
    )
    assert result.returncode == 0, result.stderr
    pip = [line.split("#")[0].strip() for line in requirement_lines(tmp_path / "pip.txt")]
    bindep = [line.split("#")[0].strip() for line in requirement_lines(tmp_path / "bindep.txt")]
    assert pip == requirement_lines(REPO / "requirements.txt")
    assert bindep == requirement_lines(REPO / "bindep.txt")


def test_requirements_agree_with_the_lock() -> None:
    lock = lock_versions()
    lines = requirement_lines(REPO / "requirements.txt")
    azure = requirement_lines(REPO / "requirements" / "azure.in")
    assert lines[-len(azure) :] == azure, "requirements.txt must end with requirements/azure.in, verbatim"
    for line in lines[: -len(azure)]:
        name, separator, version = line.partition("==")
        assert separator and version, f"{line}: pin it to the version in requirements/main.lock"
        assert lock.get(name.lower()) == version, f"{line}: requirements/main.lock has {lock.get(name.lower())}"
    assert "kubernetes" in {line.partition("==")[0] for line in lines}
    assert not any(line.lower().startswith("openshift") for line in lines), "kubernetes.core 2+ does not use openshift"


def test_ee_definition_is_v3_with_documented_base(ee_definition: dict[str, t.Any]) -> None:
    assert ee_definition["version"] == 3
    assert ee_definition["dependencies"]["python_interpreter"] == {
        "package_system": "python3.11",
        "python_path": "/usr/bin/python3.11",
    }
    assert "base_image" in ee_definition["images"]
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert meta == {"version": 1, "dependencies": {"python": "requirements.txt", "system": "bindep.txt"}}
