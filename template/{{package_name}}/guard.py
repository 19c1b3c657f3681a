"""Code-change guard: never spawn jobs onto a deployment that runs other code.

The hash covers exactly what ``modal deploy`` ships: ``modal_app.py``, the files
of this package that ``add_local_python_source`` adds to the image (by
:func:`not_shipped`, the rule ``modal_app.py`` gives modal) and the dependency spec in ``pyproject.toml``.
Editing the README, tests or the tasks file does not change it. ``make deploy``
tags the deployment with the hash; the spawner spawns onto the version tagged
with the local hash (:func:`pin`), and the deployed function re-checks it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import settings

HASH_ENV = "JOB_CODE_HASH"


@dataclass(frozen=True)
class Deployment:
    """One deployment of the app, as Modal lists it (``modal app history``)."""

    version: int
    tag: str | None  # the code hash `make deploy` tagged it with


class StaleDeploymentError(RuntimeError):
    """The deployed code differs from the local code."""


def not_shipped(path: Path) -> bool:
    """The ``ignore`` rule ``modal_app.py`` gives ``Image.add_local_python_source``: ``path`` (relative
    to the package folder) is left out of the image unless it is a ``.py`` file outside dot-folders and
    ``__pycache__``. The hash walks the package with this same rule, so what is hashed is what ships."""
    hidden = any(part.startswith(".") or part == "__pycache__" for part in path.parts)
    return hidden or path.suffix != ".py"


def shipped_package_files(root: Path = settings.PROJECT_ROOT) -> list[Path]:
    """The package files the image gets: every file under the package that :func:`not_shipped`
    keeps, walked as ``add_local_python_source`` walks it (``os.walk``, symlinks resolved)."""
    package = (Path(root) / settings.PACKAGE_NAME).absolute()
    found = set()
    for folder, _dirs, files in os.walk(package):
        for name in files:
            path = Path(folder, name)
            if not not_shipped(path.relative_to(package)):
                found.add(path.resolve())
    return sorted(found)


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


def pin(local: str, deployments: list[Deployment], allow_stale: bool = False, stale_fix: str = "") -> Deployment:
    """The deployment to spawn onto: the newest one tagged with the local code hash. Every spawn
    names its version, so a later `make deploy` cannot change what these spawns run.

    With ``allow_stale``, the newest deployment whatever its code. Raises with the fix otherwise
    (``stale_fix``: the command that spawns onto the deployed code anyway, as the user would type it).
    """
    if not deployments:
        raise StaleDeploymentError(f"app '{settings.APP_NAME}' is not deployed: run {settings.make('deploy')}")
    for deployment in deployments:  # newest first
        if deployment.tag == local:
            return deployment
    newest = deployments[0]
    if allow_stale:
        return newest
    raise StaleDeploymentError(
        f"deployed code {newest.tag or '(untagged)'} (version {newest.version}) differs from local code {local}: "
        f"run {settings.make('deploy')} (or {stale_fix or settings.make('spawn', '--allow-stale')} to spawn onto "
        "the deployed code anyway)"
    )


def check_running_code(expected: str | None) -> None:
    """Called first inside the deployed function: fail fast on a hash mismatch."""
    baked = os.environ.get(HASH_ENV)
    if expected and baked and expected != baked:
        raise StaleDeploymentError(f"this deployment runs code {baked} but the spawner expected {expected}")
