"""mkdocs hook: the Reference pages, generated at every build so that they cannot drift.

Nothing generated is committed. Each page is read from the real thing: ``copier.yml``, a project
rendered with copier's defaults (its ``make help`` and its scripts' ``--help``), and the
emulator's handler registry and package metadata.
"""

from __future__ import annotations

import reference_emulator
import reference_project
import reference_questions
from mkdocs.structure.files import File, Files
from reference_render import ROOT, answers, rendered_project

PAGES = ("reference/questions.md", "reference/make.md", "reference/cli.md", "reference/emulator.md")


def on_files(files: Files, config) -> Files:
    with rendered_project() as project:
        content = {
            "reference/questions.md": reference_questions.page(ROOT / "copier.yml", answers(project)),
            "reference/make.md": reference_project.make_page(project, ROOT),
            "reference/cli.md": reference_project.cli_page(project),
            "reference/emulator.md": reference_emulator.page(ROOT / "emulator" / "pyproject.toml"),
        }
    for uri in PAGES:
        files.append(File.generated(config, uri, content=content[uri]))
    return files
