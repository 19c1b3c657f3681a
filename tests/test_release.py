"""Release hygiene: modal-emu builds and installs on its own, and the template repo's CI is valid."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.project import ROOT


def uv() -> str:
    """The uv that `make` uses (exported as UV), else the one on PATH or in .tools/."""
    found = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    assert Path(found).exists() or shutil.which(found), "uv not found: run `make dev` first"
    return found


def test_emulator_builds_an_installable_wheel_and_sdist(tmp_path):
    proc = subprocess.run(
        [uv(), "build", "--quiet", "--out-dir", str(tmp_path), str(ROOT / "emulator")],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("modal_emu-*-py3-none-any.whl")
    (sdist,) = tmp_path.glob("modal_emu-*.tar.gz")
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(whl.read(f"{info}/METADATA").decode())
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    assert {"modal_emu/__init__.py", "modal_emu/pytest_plugin.py", "modal_emu/handlers/__init__.py"} <= names
    assert f"{info}/licenses/LICENSE" in names
    assert "[pytest11]\nmodal_emu = modal_emu.pytest_plugin" in entry_points
    assert "[console_scripts]\nmodal-emu = modal_emu.__main__:main" in entry_points
    assert metadata["License-Expression"] == "MIT" and metadata["Requires-Python"] == ">=3.11"
    assert metadata["Summary"] and "Supported modal versions" in metadata.get_payload()
    modal_range = next(r for r in metadata.get_all("Requires-Dist") if r.startswith("modal"))
    tested = Version(__import__("modal").__version__)
    assert tested in SpecifierSet(modal_range.removeprefix("modal")), f"{modal_range} excludes the tested {tested}"
    with tarfile.open(sdist) as tar:
        files = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "src/modal_emu/server.py"} <= files


def test_ci_workflow_runs_make_test_on_linux_and_macos_for_each_python():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    (job,) = workflow["jobs"].values()
    matrix = job["strategy"]["matrix"]
    assert set(matrix["os"]) == {"ubuntu-latest", "macos-latest"}
    assert matrix["python"] == ["3.11", "3.12", "3.13"]
    assert job["env"]["UV_PYTHON"] == "${{ matrix.python }}"
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "the releases bundle is checked against the full history"
    assert any("make test" in s.get("run", "") for s in job["steps"])


def test_releases_bundle_holds_the_released_trees_of_this_history(tmp_path):
    """tests/releases.bundle is what the update tests render from. Each release in it must be the files
    of a commit on this branch, and of its tag where the clone has tags: a bundle rewritten from wrong
    tags, or not rewritten after a release, fails here."""
    from tests.repo import FIRST_RELEASE, RELEASES, bundle_tags, git

    released = bundle_tags()
    assert FIRST_RELEASE in released
    git("init", "-q", "--bare", str(tmp_path), cwd=ROOT)
    git("fetch", "-q", str(RELEASES), "refs/tags/*:refs/tags/*", cwd=tmp_path)
    trees = {tag: git("rev-parse", f"{tag}^{{tree}}", cwd=tmp_path) for tag in released}
    if git("rev-parse", "--is-shallow-repository", cwd=ROOT) != "true":  # a shallow clone lacks the history
        history = set(git("log", "--format=%T", "HEAD", cwd=ROOT).split())
        strangers = sorted(tag for tag, tree in trees.items() if tree not in history)
        assert not strangers, f"releases in tests/releases.bundle that are no commit of this branch: {strangers}"
    head = git("rev-parse", "HEAD", cwd=ROOT)
    for tag in git("tag", "--list", "v*", cwd=ROOT).split():
        if git("rev-parse", f"{tag}^{{commit}}", cwd=ROOT) == head:
            continue  # tagged at HEAD: the bundle can hold it from the next commit on
        assert tag in trees, f"tag {tag} is not in tests/releases.bundle: run `make releases-bundle`"
        assert trees[tag] == git("rev-parse", f"{tag}^{{tree}}", cwd=ROOT), f"{tag} differs from the bundle"
