"""A project rendered from this template with copier's defaults, for the reference pages.

The reference shows what a user gets, so it is read from a real render (copier, with the
template's own jinja settings) of the working tree, not from the template's sources.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from copier import run_copy

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """A plain environment: no Modal or virtualenv variables of the shell that builds the docs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_", "VIRTUAL_ENV", "JOB_"))}
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS="100", **extra)
    return env


@contextmanager
def rendered_project() -> Iterator[Path]:
    """``copier copy --defaults`` of the working tree into a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="docs-render-") as tmp:
        dst = Path(tmp) / "modal-jobs"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "dirty template changes": exactly what the docs should show
            # vcs_ref HEAD: without it copier renders the newest release tag, and the reference would
            # describe the last release instead of this checkout (in a clone with tags).
            run_copy(str(ROOT), dst, defaults=True, unsafe=False, quiet=True, vcs_ref="HEAD")
        yield dst


def answers(project: Path) -> dict:
    """The answers copier recorded for the render (computed defaults included)."""
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))


def make_help(folder: Path) -> list[tuple[str, str]]:
    """``make help`` in ``folder``, as (target, help) pairs, in the Makefile's order."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    pairs = []
    for line in proc.stdout.splitlines():
        name, _, text = line.strip().partition(" ")
        if name:
            pairs.append((name, text.strip()))
    return pairs


def python(code: str, cwd: Path) -> str:
    """Run ``code`` with this Python (the dev venv has the generated project's dependencies)."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=clean_env(), capture_output=True, text=True, check=False, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference: running Python in {cwd} failed:\n{proc.stderr}")
    return proc.stdout
