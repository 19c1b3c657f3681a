"""Code-change guard: never spawn jobs onto a deployment that runs other code.

The hash covers exactly what ``modal deploy`` ships: ``modal_app.py``, the files
of this package that ``add_local_python_source`` adds to the image (found with
modal's own rules: ``*.py`` only) and the dependency spec in ``pyproject.toml``.
Editing the README, tests or the tasks file does not change it. ``make deploy``
tags the deployment with the hash; the spawner compares it with the newest
deployed tag, and the deployed function re-checks it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from . import settings

HASH_ENV = "JOB_CODE_HASH"


class StaleDeploymentError(RuntimeError):
    """The deployed code differs from the local code."""


def shipped_package_files(root: Path = settings.PROJECT_ROOT) -> list[Path]:
    """The package files ``add_local_python_source`` puts in the image, by modal's own rules
    (its default ``ignore``, which keeps ``*.py`` files only)."""
    from pathlib import PurePosixPath

    from modal.file_pattern_matcher import NON_PYTHON_FILES
    from modal.mount import _MountDir

    package = _MountDir(
        Path(root) / settings.PACKAGE_NAME, PurePosixPath("/root"), ignore=NON_PYTHON_FILES, recursive=True
    )
    return sorted({Path(local).resolve() for local, _remote in package.get_files_to_upload()})


def deployed_files(root: Path = settings.PROJECT_ROOT) -> list[Path]:
    """The files whose content goes into the hash, in a stable order: exactly the ones deployed."""
    return [root / "modal_app.py", *shipped_package_files(root)]


def unshipped_files(root: Path = settings.PROJECT_ROOT) -> list[Path]:
    """Files in the package that Modal will NOT ship (a job that opens them fails on Modal only)."""
    package = root / settings.PACKAGE_NAME
    shipped = set(shipped_package_files(root))
    return sorted(
        p
        for p in package.rglob("*")
        if p.is_file()
        and p.resolve() not in shipped
        and p.suffix not in {".pyc", ".pyo"}
        and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(package).parts)
    )


def dependency_spec(root: Path = settings.PROJECT_ROOT) -> dict:
    """The part of ``pyproject.toml`` that decides what is installed in the image."""
    import tomllib  # only needed locally; the image may run an older Python

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    return {
        "dependencies": project.get("dependencies", []),
        "job": project.get("optional-dependencies", {}).get("job", []),
    }


def code_hash(root: Path = settings.PROJECT_ROOT) -> str:
    """A short, stable content hash of everything that is deployed."""
    root = Path(root).resolve()
    digest = hashlib.sha256()
    for path in deployed_files(root):
        rel = path.relative_to(root).as_posix()
        digest.update(f"file {rel}\n".encode())
        digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
        digest.update(b"\n")
    digest.update(json.dumps(dependency_spec(root), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def parse_history(text: str) -> str | None:
    """The tag of the newest deployment in ``modal app history --json`` output."""
    rows = json.loads(text or "[]")
    if not rows:
        return None

    def version(row: dict) -> int:
        raw = str(row.get("Version", row.get("version", "0"))).lstrip("v")
        return int(raw) if raw.isdigit() else 0

    newest = max(rows, key=version)
    tag = newest.get("tag", newest.get("Tag"))
    return tag or None


class DeployedHash:
    """The hash the deployed app was tagged with (``None`` when never deployed), read from
    ``modal app history APP --json`` in a child process that starts at once: ask early,
    do other work, then call :meth:`result`. Accepts both ``tag`` and ``Tag`` keys."""

    def __init__(self, app_name: str = settings.APP_NAME):
        self.app_name = app_name
        # This interpreter's modal: found even when the venv's bin/ is not on PATH.
        self.command = [sys.executable, "-m", "modal", "app", "history", app_name, "--json"]
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> str | None:
        limit = settings.API_TIMEOUT_S + 10
        try:
            out, errors = self.proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise RuntimeError(
                f"`modal app history {self.app_name} --json` got no answer within {limit:g} s: "
                "is Modal's API reachable?"
            ) from None
        if self.proc.returncode != 0:
            text = (errors + out).lower()
            if "not found" in text or "no app with name" in text:
                return None
            last = (errors or out).strip().splitlines()[-1:] or ["no output"]
            hint = ""
            if "token missing" in text or "could not authenticate" in text:
                hint = " (no Modal token: run `modal setup`; for the local emulator, add LOCAL=1)"
            raise RuntimeError(f"`modal app history {self.app_name} --json` failed: {last[0]}{hint}")
        return parse_history(out)


def deployed_hash(app_name: str = settings.APP_NAME) -> str | None:
    """The hash the deployed app was tagged with (``None`` when never deployed)."""
    return DeployedHash(app_name).result()


def check_deployment(local: str, deployed: str | None) -> None:
    """Raise with the fix when the deployment is missing or stale."""
    if deployed is None:
        raise StaleDeploymentError(f"app '{settings.APP_NAME}' is not deployed: run `make deploy`")
    if deployed != local:
        raise StaleDeploymentError(
            f"deployed code {deployed} differs from local code {local}: run `make deploy` "
            "(or `make spawn ARGS=--allow-stale` to spawn onto the old code anyway)"
        )


def check_running_code(expected: str | None) -> None:
    """Called first inside the deployed function: fail fast on a hash mismatch."""
    baked = os.environ.get(HASH_ENV)
    if expected and baked and expected != baked:
        raise StaleDeploymentError(
            f"this deployment runs code {baked} but the spawner expected {expected}: run `make deploy`"
        )


def main() -> int:
    """``python -m PACKAGE.guard``: local vs deployed hash, for `make guard`."""
    local = code_hash()
    try:
        deployed = deployed_hash()
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 2
    print(f"local    {local}\ndeployed {deployed or '(not deployed)'}")
    try:
        check_deployment(local, deployed)
    except StaleDeploymentError as exc:
        print(f"STALE: {exc}")
        return 1
    print("up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
