"""reference/questions.md: every question of copier.yml, read from the file itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import yaml

TAG = re.compile(r"\{%.*?%\}", re.S)
EXPR = re.compile(r"\{\{.*?\}\}", re.S)


def load_questions(copier_yml: Path) -> dict[str, dict]:
    """The questions of ``copier.yml`` (settings starting with ``_`` left out), in file order."""
    data = yaml.safe_load(copier_yml.read_text(encoding="utf-8"))
    return {name: spec for name, spec in data.items() if not name.startswith("_")}


def asked(spec: dict) -> bool:
    return spec.get("when") is not False


def shown_type(spec: dict) -> str:
    """The answer's type; a jinja type (an int that stays text when it is not a number, so that the
    validator can name the question) is shown as the type it asks for."""
    raw = str(spec.get("type", "str"))
    if "{{" in raw:
        return re.findall(r"'(\w+)'", raw)[0]
    return raw


def rules(name: str, spec: dict) -> list[str]:
    """The validator's error messages, one per rule (the text between its jinja tags that starts
    with the question's name), with the values it inserts shown as `…`."""
    found = []
    for part in TAG.split(str(spec.get("validator", ""))):
        text = " ".join(part.split())
        if text.startswith(f"{name}:"):
            text = EXPR.sub("…", text[len(name) + 1 :]).strip()
            found.append(re.sub(r"\s*\(got …\)$", "", text))
    return found


def choices(copier_yml: Path, spec: dict) -> list:
    """A question's choices; written as jinja (a list from includes/names.jinja), rendered as copier does."""
    raw = spec["choices"]
    if not isinstance(raw, str):
        return raw
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(copier_yml.parent))
    return yaml.safe_load(env.from_string(raw).render())


def _code(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`" if text else "(empty)"


def page(copier_yml: Path, rendered: dict) -> str:
    questions = load_questions(copier_yml)
    out = [
        "# Questions (`copier.yml`)",
        "",
        "Generated from `copier.yml` when this site is built. *Default* is what `copier copy --defaults`",
        "answers, as recorded in a fresh render's `.copier-answers.yml`; *rules* are the messages the",
        "question's validator prints (with `…` where it inserts the value).",
        "",
        "| question | type | default |",
        "|---|---|---|",
    ]
    for name, spec in questions.items():
        if asked(spec):
            default = rendered.get(name, spec.get("default"))
            out.append(f"| [`{name}`](#{name}) | {shown_type(spec)} | {_code(default)} |")
    for name, spec in questions.items():
        if not asked(spec):
            continue
        out += ["", f"## `{name}` {{#{name}}}", "", " ".join(str(spec.get("help", "")).split()), ""]
        out.append(f"- **type**: {shown_type(spec)}")
        out.append(f"- **default**: {_code(spec.get('default'))}")
        if name in rendered and rendered[name] != spec.get("default"):
            out.append(f"  (with all defaults: {_code(rendered[name])})")
        if "choices" in spec:
            out.append("- **choices**: " + ", ".join(_code(c) for c in choices(copier_yml, spec)))
        if isinstance(spec.get("when"), str):
            out.append(f"- **asked when**: `{spec['when'].strip()}`")
        for rule in rules(name, spec):
            out.append(f"- **rule**: {rule}")
    derived = [name for name, spec in questions.items() if not asked(spec)]
    out += [
        "",
        "## Derived values {#derived}",
        "",
        "Never asked (`when: false`), always computed from the answers above:",
        "",
    ]
    out += [f"- `{name}` = `{questions[name].get('default')}`" for name in derived]
    return "\n".join(out) + "\n"
