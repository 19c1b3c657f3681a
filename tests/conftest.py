import fcntl
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import pytest

from tests.project import Project
from tests.project import render as render_template

# copier notes that the template checkout has uncommitted changes; that is expected while developing.
warnings.filterwarnings("ignore", message=".*Dirty template changes.*")


class Projects:
    """Rendered projects, one render per answer set for the whole test run, handed out as copies.

    Under ``pytest -n N`` each xdist worker is its own session; the renders live under the run's
    shared temporary folder (the parent of every worker's basetemp) and a file lock per answer set
    makes the first worker that asks render it while the others wait for it. A render is never
    changed after it is made: tests get a copy (``new``), or read it (``rendered``).

    Each copy gets its own ``make setup``: a venv is tied to its path, and `make local-up` installs
    the emulator into it, so copies cannot share one (with uv's cache warm, a setup takes ~1.5 s).
    """

    def __init__(self, shared: Path, tmp: pytest.TempPathFactory):
        self.shared = shared
        self.tmp = tmp

    def rendered(self, **answers) -> Path:
        """The render of these answers (copier's defaults for the rest): read it, never change it."""
        key = hashlib.sha256(json.dumps(answers, sort_keys=True).encode()).hexdigest()[:16]
        self.shared.mkdir(parents=True, exist_ok=True)
        dst = self.shared / key
        with open(self.shared / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or the worker dies
            if not (self.shared / f"{key}.done").exists():
                shutil.rmtree(dst, ignore_errors=True)  # left half-made by a worker that died
                render_template(dst, **answers)
                (self.shared / f"{key}.done").write_text(json.dumps(answers))
        return dst

    def new(self, name: str = "project", *, setup: bool = True, test_workload: bool = False, **answers) -> Project:
        """A private copy of the render of these answers, at ``<tmp>/<name>N/project``; with
        ``setup``, after `make setup`; with ``test_workload``, running tests/workloads/workload.py."""
        dst = self.tmp.mktemp(name) / "project"
        shutil.copytree(self.rendered(**answers), dst, symlinks=True)
        project = Project(dst)
        if test_workload:
            project.install_test_workload()
        if setup:
            project.make("setup", local=False)
        return project


@pytest.fixture(scope="session")
def projects(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Projects:
    base = tmp_path_factory.getbasetemp()
    xdist_worker = hasattr(request.config, "workerinput")  # its basetemp is <the run's>/popen-gwN
    shared = base.parent if xdist_worker else base
    return Projects(shared / "rendered", tmp_path_factory)


@pytest.fixture
def render(projects: Projects):
    """A private copy of the render of these answers (as `copier copy --defaults`, no --trust), not set up."""

    def _do(**answers) -> Path:
        return projects.new("render", setup=False, **answers).path

    return _do


@pytest.fixture
def own_ledger(monkeypatch, tmp_path):
    """This test keeps its own ledger and results (the generated settings read these variables)."""
    monkeypatch.setenv("JOB_LEDGER", str(tmp_path / "ledger.sqlite3"))
    monkeypatch.setenv("JOB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path
