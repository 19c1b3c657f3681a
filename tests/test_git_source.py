"""The README's way to use the template: `copier copy` from a git source, then the project's own
`make local-up` installs the emulator from that same source. Offline: the template is committed
into a local repository (tagged, then one commit past the tag, as a released template evolves),
and GitHub URLs are redirected to it with git's `insteadOf`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project import ROOT, Project, clean_env
from tests.repo import copy_working_tree
from tests.repo import git as _git


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory) -> Path:
    """This working tree (with uncommitted edits) committed into a fresh repository: v0.1.0, then one more commit."""
    repo = tmp_path_factory.mktemp("src") / "copier-modal-jobs"
    copy_working_tree(repo)
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "template", cwd=repo)
    _git("tag", "v0.1.0", cwd=repo)
    (repo / "CHANGES.md").write_text("after v0.1.0\n")
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "one commit past the tag", cwd=repo)
    return repo


def _head(repo: Path) -> str:
    return _git("rev-parse", "HEAD", cwd=repo)


def _env(tmp: Path, redirect: dict[str, Path] | None = None, **extra: str) -> dict[str, str]:
    """A fresh shell's environment; copier's clone cache in tmp; `redirect` maps URLs to local repositories."""
    env = {**clean_env(), "XDG_CACHE_HOME": str(tmp / "cache"), **extra}
    for i, (url, repo) in enumerate((redirect or {}).items()):
        env[f"GIT_CONFIG_KEY_{i}"] = f"url.{repo}.insteadOf"
        env[f"GIT_CONFIG_VALUE_{i}"] = url
    env["GIT_CONFIG_COUNT"] = str(len(redirect or {}))
    return env


def copier_copy(src: str, dst: Path, env: dict[str, str], *args: str, cwd: Path | None = None):
    cmd = [sys.executable, "-m", "copier", "copy", "--defaults", "--quiet", *args, src, str(dst)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120)


def make(project: Path, *args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """`make ARGS` in that shell's environment (which sets LOCAL itself where the test wants it)."""
    return Project(project, env=env).make(*args, local=False, check=check)


def install_command(project: Path, env: dict[str, str]) -> str:
    """What `make local-up` would run to install the emulator (make -n: nothing is run)."""
    out = make(project, "-n", "local-up", env=env).stdout
    return next(line for line in out.splitlines() if " pip install " in line)


@pytest.mark.e2e
def test_git_source_past_a_tag_runs_the_whole_local_flow(template_repo, tmp_path):
    """`copier copy git+file://...` at HEAD (one commit past v0.1.0), then, with LOCAL=1 exported as a user
    would (and some other virtualenv active): make setup, local-up (emulator installed from the git source
    into the project's .venv), deploy, spawn, wait, local-down."""
    sha = _head(template_repo)
    project = tmp_path / "jobs"
    other_venv = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other_venv)], check=True)
    env = _env(tmp_path, LOCAL="1", VIRTUAL_ENV=str(other_venv))
    proc = copier_copy(f"git+file://{template_repo}", project, env, "--vcs-ref=HEAD")
    assert proc.returncode == 0, proc.stderr
    expected = f"modal-emu @ git+file://{template_repo}@{sha}#subdirectory=emulator"
    assert f"'{expected}'" in install_command(project, env)
    (project / "tasks.jsonl").write_text('{"id": "a", "n": 1000}\n{"id": "b", "n": 2000}\n')

    make(project, "setup", env=env)
    try:
        make(project, "local-up", env=env)
        direct_url = next((project / ".venv").glob("lib/python*/site-packages/modal_emu-*.dist-info/direct_url.json"))
        origin = json.loads(direct_url.read_text())
        assert origin["url"] == f"file://{template_repo}" and origin["vcs_info"]["commit_id"] == sha, origin
        assert not list(other_venv.glob("lib/python*/site-packages/modal_emu*")), "installed into the active venv"
        make(project, "deploy", env=env)
        make(project, "spawn", env=env)
        waited = make(project, "wait", "ARGS=--json --interval 0.5", env=env)
        assert {c["task_id"]: c["state"] for c in json.loads(waited.stdout)} == {"a": "succeeded", "b": "succeeded"}
    finally:
        down = make(project, "local-down", env=env, check=False)
    assert down.returncode == 0 and "stopped" in down.stdout + down.stderr, down
    again = make(project, "local-down", env=env)
    assert "not running" in again.stdout + again.stderr


@pytest.mark.parametrize(
    ("source", "requirement_url"),
    [
        ("gh:acme/copier-modal-jobs", "git+https://github.com/acme/copier-modal-jobs"),
        ("https://github.com/acme/copier-modal-jobs.git", "git+https://github.com/acme/copier-modal-jobs.git"),
        ("git@github.com:acme/copier-modal-jobs.git", "git+ssh://git@github.com/acme/copier-modal-jobs.git"),
    ],
)
def test_remote_sources_pin_the_rendered_commit(template_repo, tmp_path, source, requirement_url):
    """gh:, https:// and scp-style sources become a uv requirement at the exact commit rendered (no network:
    git fetches those URLs from the local repository)."""
    redirect = {
        "https://github.com/acme/copier-modal-jobs.git": template_repo,
        "git@github.com:acme/copier-modal-jobs.git": template_repo,
    }
    env = _env(tmp_path, redirect)
    project = tmp_path / "jobs"
    proc = copier_copy(source, project, env, "--vcs-ref=HEAD")
    assert proc.returncode == 0, proc.stderr
    expected = f"'modal-emu @ {requirement_url}@{_head(template_repo)}#subdirectory=emulator'"
    assert expected in install_command(project, env)


def test_relative_template_path_gives_an_absolute_emulator_path(template_repo, tmp_path):
    """`copier copy ../copier-modal-jobs jobs`: the project's Makefile runs elsewhere, so the path must be absolute."""
    env = _env(tmp_path)
    project = tmp_path / "jobs"
    proc = copier_copy(template_repo.name, project, env, cwd=template_repo.parent)
    assert proc.returncode == 0, proc.stderr
    assert f"'{template_repo / 'emulator'}'" in install_command(project, env)


def test_relative_emulator_source_is_made_absolute(tmp_path):
    env = _env(tmp_path)
    (tmp_path / "checkout" / "emulator").mkdir(parents=True)
    project = tmp_path / "jobs"
    proc = copier_copy(str(ROOT), project, env, "-d", "emulator_source=checkout/emulator", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"'{tmp_path / 'checkout' / 'emulator'}'" in install_command(project, env)
