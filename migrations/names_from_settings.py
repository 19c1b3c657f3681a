"""Migration to 0.2.0 (copier.yml `_migrations`, stage `before`), run in the project being updated.

0.1.0's settings.py invited renaming the app or the function there. The answers file kept the old
names, so the next render (README.md, modal_app.py, settings.py) would bring them back or fight the
edit. This copies APP_NAME / FUNCTION_NAME from settings.py into .copier-answers.yml when they differ;
copier then renders the new version with them. Nothing is written when a value is not a valid answer:
the update stops with one line naming the file, the line and the question.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

ANSWERS = Path(".copier-answers.yml")
# The same rules as the questions' validators in copier.yml.
RULES = {
    "APP_NAME": ("app_name", re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")),
    "FUNCTION_NAME": ("function_name", re.compile(r"^[a-z_][a-z0-9_]{0,62}$")),
}


class MigrationError(Exception):
    pass


def settings_file(answers: dict) -> Path | None:
    """The package's settings.py: the package is named from project_name, as copier.yml does."""
    package = re.sub(r"[^a-z0-9]+", "_", str(answers.get("project_name", "")).lower()).strip("_")
    path = Path(package) / "settings.py"
    return path if package and path.is_file() else None


def names_in(path: Path) -> dict[str, tuple[str, int]]:
    """APP_NAME / FUNCTION_NAME assigned as string literals at the top level: value and line."""
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in RULES and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                found[name] = (node.value.value, node.lineno)
    return found


def migrate(answers_path: Path = ANSWERS) -> dict[str, str]:
    """Write the changed names into the answers file; the answers that changed."""
    text = answers_path.read_text(encoding="utf-8")
    answers = yaml.safe_load(text) or {}
    settings = settings_file(answers)
    if settings is None:
        return {}
    changed = {}
    for variable, (value, line) in names_in(settings).items():
        question, rule = RULES[variable]
        if value == answers.get(question):
            continue
        if not rule.match(value):
            raise MigrationError(
                f"{settings}:{line}: {variable} = {value!r} is not a valid {question} answer; "
                f"fix it there or run `copier update --data {question}=...`"
            )
        changed[question] = value
    if changed:
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        body = yaml.safe_dump({**answers, **changed}, sort_keys=False, default_flow_style=False, allow_unicode=True)
        answers_path.write_text(header + body, encoding="utf-8")
    return changed


def main() -> int:
    try:
        changed = migrate()
    except (MigrationError, OSError, SyntaxError, yaml.YAMLError) as exc:
        print(f"migration names_from_settings: {exc}", file=sys.stderr)
        return 1
    for question, value in changed.items():
        print(f"migration: {question} is now {value!r} (from settings.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
