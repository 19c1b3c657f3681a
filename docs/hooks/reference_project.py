"""reference/make.md and reference/cli.md: read from a project rendered with copier's defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reference_render import make_help, python

# Runs inside the rendered project: every command's --help, as the user's terminal shows it.
_HELP_SCRIPT = """
import importlib, json, pathlib, sys
import typer
from typer.testing import CliRunner
sys.path.insert(0, ".")
package = next(pathlib.Path(".").glob("*/cli.py")).parent.name
cli = importlib.import_module(package + ".cli")
runner = CliRunner()
prog = "python -m " + package
def show(args):
    result = runner.invoke(cli.app, [*args, "--help"], prog_name=prog, terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output
pages = {prog: show([])}
for name in typer.main.get_command(cli.app).commands:
    pages[prog + " " + name] = show([name])
print(json.dumps(pages))
"""


def cli_help(project: Path) -> dict[str, str]:
    """``--help`` of the project's CLI (``python -m PACKAGE``) and of each of its commands."""
    return json.loads(python(_HELP_SCRIPT, project))


def modal_targets(makefile: Path) -> list[str]:
    """The targets that talk to Modal (and to the emulator with ``LOCAL=1``)."""
    match = re.search(r"^MODAL_TARGETS\s*:=\s*(.+)$", makefile.read_text(encoding="utf-8"), re.M)
    return match.group(1).split() if match else []


def _targets_table(pairs: list[tuple[str, str]], modal: list[str] | None = None, prefix: str = "") -> list[str]:
    """A table of targets; each row carries an anchor (``prefix`` + the target's name)."""
    columns = ["target", "what it does"] + (["`LOCAL=1`"] if modal is not None else [])
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, text in pairs:
        cells = [f'<span id="{prefix}{name}"></span>`make {name}`', text.replace("|", "&#124;")]
        if modal is not None:
            cells.append("yes" if name in modal else "")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def make_page(project: Path, root: Path) -> str:
    out = [
        "# Make targets",
        "",
        "Generated when this site is built: `make help` of a project rendered with `copier copy --defaults`.",
        "Targets marked `LOCAL=1` talk to Modal; with `LOCAL=1` they talk to the local emulator",
        "(`make local-up`) instead, and stop with one line if it is not running.",
        '`ARGS="..."` passes options to the script behind a target (see [the CLI reference](cli.md)),',
        "`TASKS=file` names the tasks or grid file of `make spawn`.",
        "",
        "## The generated project",
        "",
        *_targets_table(make_help(project), modal_targets(project / "Makefile")),
        "",
        "## This template repository {#template-repository}",
        "",
        "`make help` at the root of copier-modal-jobs:",
        "",
        *_targets_table(make_help(root), prefix="repo-"),
    ]
    return "\n".join(out) + "\n"


def cli_page(project: Path) -> str:
    out = [
        "# Command line",
        "",
        "Generated when this site is built: the `--help` of the generated project's commands, from a",
        "project rendered with `copier copy --defaults`. The make targets call them (`make spawn` is",
        "`python -m modal_jobs spawn`, `make status` is `python -m modal_jobs status`, ...); pass options",
        'with `ARGS="..."`.',
    ]
    for command, text in cli_help(project).items():
        anchor = "-".join(["cli", *command.split()[3:]])
        lines = "\n".join(line.rstrip() for line in text.splitlines()).strip("\n").splitlines()
        out += ["", f"## `{command}` {{#{anchor}}}", "", "```text", *lines, "```"]
    return "\n".join(out) + "\n"
