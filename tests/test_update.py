"""`copier update` across template versions, with real copier and real git: a project rendered at the
first release, edited as its user would, then updated to this working tree (committed as the next
release by tests/repo.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from copier import run_copy, run_update

from tests.project import Project
from tests.repo import FIRST_RELEASE, GIT, IDENTITY, repo_with_working_tree
from tests.test_generated import READ_SETTINGS

PACKAGE = "modal_jobs"  # the default project_name's package
OWNED = [f"{PACKAGE}/workload.py", "tests/test_workload.py", "tasks.jsonl", "grid.yaml"]  # copier.yml _skip_if_exists
CONFLICT = re.compile(rb"^(<<<<<<<|>>>>>>>)( |$)", re.M)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, str]:
    return repo_with_working_tree(tmp_path_factory.mktemp("tpl") / "copier-modal-jobs")


@pytest.fixture(autouse=True)
def git_identity(monkeypatch):
    """copier update commits in scratch repositories; a CI runner has no git identity of its own."""
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)


def commit(project: Path, message: str) -> None:
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", message]):
        subprocess.run([*GIT, *cmd], cwd=project, check=True, capture_output=True)


def render(template: tuple[Path, str], dst: Path, ref: str = FIRST_RELEASE, **answers) -> Path:
    run_copy(str(template[0]), dst, data=answers, defaults=True, quiet=True, vcs_ref=ref, unsafe=False)
    commit(dst, f"rendered at {ref}")
    return dst


def update(project: Path, **answers) -> None:
    # --trust: updating across 0.2.0 runs its migration (copier.yml _migrations).
    run_update(project, data=answers, defaults=True, overwrite=True, quiet=True, vcs_ref="HEAD", unsafe=True)


def files(root: Path) -> dict[str, bytes]:
    local = {".git", "__pycache__"}  # git's own data, and bytecode of the guard's and the tests' imports
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not local & set(p.parts)
    }


def assert_clean_merge(project: Path) -> None:
    found = files(project)
    assert not [f for f in found if f.endswith(".rej")], "copier left rejected hunks"
    assert not [f for f, data in found.items() if CONFLICT.search(data)], "conflict markers left"


def test_update_keeps_the_users_edits_and_brings_the_templates_changes(template, tmp_path):
    old = render(template, tmp_path / "old")
    project = render(template, tmp_path / "project")
    user = Project(project)
    user.edit(f"{PACKAGE}/workload.py", 'result = {"task_id"', 'result = {"owner": "me", "task_id"')
    (project / "tasks.jsonl").write_text('{"id": "mine-1", "n": 50}\n{"id": "mine-2", "n": 500}\n')
    user.edit("pyproject.toml", '"pyyaml>=6"]', '"pyyaml>=6", "rich>=13"]')
    edited = {rel: (project / rel).read_bytes() for rel in [*OWNED, "pyproject.toml"]}
    commit(project, "my job")

    update(project)

    assert_clean_merge(project)
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == template[1]
    for rel, data in edited.items():
        assert (project / rel).read_bytes() == data, f"{rel}: the user's edit was lost"
    # Every other file is exactly the new version's (the user touched nothing else).
    new = files(render(template, tmp_path / "new", ref="HEAD"))
    got = files(project)
    assert sorted(got) == sorted(new)
    assert [f for f in new if f not in edited and got[f] != new[f]] == []
    changed = {f for f, data in files(old).items() if new.get(f) != data}
    assert {"tests/test_sweep.py", f"{PACKAGE}/settings.py"} <= changed, "no change of the template arrived"
    # The updated template code works with the user's own job and tasks (no `uv sync`: this venv has them).
    tests = ["tests/test_tasks.py", "tests/test_sweep.py", "tests/test_workload.py", "tests/test_guard.py"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *tests],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_owned_files_are_not_updated_even_when_the_template_changes_them(template, tmp_path):
    """A later version that changes the example job and tasks leaves the project's own copies alone,
    while its change to a file the template owns arrives."""
    repo = tmp_path / "later"
    subprocess.run([*GIT, "clone", "-q", str(template[0]), str(repo)], check=True, capture_output=True)
    project = render((repo, template[1]), tmp_path / "project", ref=template[1])
    owned = {rel: (project / rel).read_bytes() for rel in OWNED}
    for source in ["{{package_name}}/workload.py.jinja", "tasks.jsonl.jinja", "grid.yaml.jinja", "README.md.jinja"]:
        with open(repo / "template" / source, "a", encoding="utf-8") as f:
            f.write("\n# changed in the next version\n")
    git_in_repo = [*GIT, "-C", str(repo)]
    subprocess.run([*git_in_repo, "commit", "-qam", "next"], check=True, capture_output=True)
    subprocess.run([*git_in_repo, "tag", "-a", "v99.0.0", "-m", "next"], check=True, capture_output=True)

    update(project)

    assert_clean_merge(project)
    assert {rel: (project / rel).read_bytes() for rel in OWNED} == owned
    assert (project / "README.md").read_text().endswith("# changed in the next version\n")


def test_a_changed_answer_rerenders_what_depends_on_it(template, tmp_path):
    project = render(template, tmp_path / "project", gpu="L4", timeout_seconds=3600)
    update(project, gpu="A100-80GB", timeout_seconds=7200)
    assert_clean_merge(project)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert (answers["gpu"], answers["timeout_seconds"]) == ("A100-80GB", 7200)
    proc = subprocess.run([sys.executable, "-c", READ_SETTINGS, str(project)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)[str(project)]  # modal's own Function object, read back from modal_app.py
    assert (seen["gpus"], seen["timeout"]) == ([["A100-80GB", 1]], 7200)
    settings = (project / PACKAGE / "settings.py").read_text()
    assert 'GPU: str | None = "A100-80GB"' in settings and "TIMEOUT_S = 7200" in settings


def test_migration_carries_a_renamed_app_into_the_answers(template, tmp_path):
    """0.1.0 told users to rename the app in settings.py; after the update the answers, README and
    settings agree on the new name. Fails without the migration: the answers keep the old one."""
    project = render(template, tmp_path / "project")
    settings = project / PACKAGE / "settings.py"
    Project(project).edit(f"{PACKAGE}/settings.py", 'APP_NAME = "modal-jobs"', 'APP_NAME = "renamed-jobs"')
    commit(project, "rename the app, as settings.py said")

    update(project)

    assert_clean_merge(project)
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["app_name"] == "renamed-jobs"
    assert "| Modal app | `renamed-jobs` |" in (project / "README.md").read_text()
    assert 'APP_NAME = "renamed-jobs"' in settings.read_text()


def test_migration_refuses_a_name_that_is_no_valid_answer(template, tmp_path, capfd):
    project = render(template, tmp_path / "project")
    Project(project).edit(f"{PACKAGE}/settings.py", 'APP_NAME = "modal-jobs"', 'APP_NAME = "My Jobs"')
    commit(project, "a name Modal would refuse")

    with pytest.raises(Exception, match="names_from_settings"):
        update(project)

    err = capfd.readouterr().err
    assert f"{PACKAGE}/settings.py:12: APP_NAME = 'My Jobs' is not a valid app_name answer" in err
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout
    assert status == "", "a refused update changed the project:\n" + status


GUARD = "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); from {} import guard; print({})"


def guard(project: Path, expr: str) -> str:
    code = GUARD.format(PACKAGE, expr)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(project)], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_update_of_undeployed_files_keeps_the_code_hash(template, tmp_path):
    """With the project's own guard: an update that only changes what Modal does not ship (here the
    Makefile and the answers file) keeps the hash, and so does any edit of a file that is not shipped."""
    project = render(template, tmp_path / "project", ref="HEAD")
    before = guard(project, "guard.code_hash(Path(sys.argv[1]))")
    update(project, emulator_source=str(tmp_path / "elsewhere"))
    assert_clean_merge(project)
    touched = subprocess.run(["git", "diff", "--name-only"], cwd=project, capture_output=True, text=True).stdout
    assert {"Makefile", ".copier-answers.yml"} <= set(touched.split()), touched
    assert guard(project, "guard.code_hash(Path(sys.argv[1]))") == before

    deployed = json.loads(
        guard(project, "__import__('json').dumps([str(p) for p in guard.deployed_files(Path(sys.argv[1]))])")
    )
    shipped = {Path(p).resolve().relative_to(project.resolve()).as_posix() for p in deployed}
    assert "modal_app.py" in shipped and f"{PACKAGE}/workload.py" in shipped
    others = [f for f in files(project) if f not in shipped and f != "pyproject.toml"]
    assert {"README.md", "Makefile", ".copier-answers.yml", "tests/test_guard.py", "tasks.jsonl"} <= set(others)
    for rel in others:
        with open(project / rel, "a", encoding="utf-8") as f:
            f.write("\n# edited by an update\n")
    assert guard(project, "guard.code_hash(Path(sys.argv[1]))") == before
    with open(project / "modal_app.py", "a", encoding="utf-8") as f:
        f.write("\n# a deployed change\n")
    assert guard(project, "guard.code_hash(Path(sys.argv[1]))") != before, "the hash ignores deployed code"
