"""The docs site: it builds with --strict, every internal link and anchor of the built HTML resolves,
external links are well-formed (they cannot be fetched: no network), and the generated reference
covers every copier question, make target, monitor command and emulator RPC."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from tests.project import ROOT


class _Page(HTMLParser):
    """The ids a page defines and the links it makes (href and src)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            elif name in ("href", "src") and value is not None:
                self.links.append(value)


def read_site(site: Path) -> dict[Path, _Page]:
    pages = {}
    for path in site.rglob("*.html"):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path] = page
    return pages


def check_links(site: Path) -> tuple[list[str], list[str]]:
    """(broken internal links and anchors, external URLs) of the built site."""
    site = site.resolve()
    pages = read_site(site)
    broken, external = [], []
    for path, page in pages.items():
        where = path.relative_to(site)
        for link in page.links:
            url = urlparse(link)
            if url.scheme in ("http", "https") or link.startswith("//"):
                external.append(link)
                continue
            if url.scheme:  # mailto:, data:, javascript:
                continue
            base = site if url.path.startswith("/") else path.parent  # 404.html links from the site's root
            target = (base / unquote(url.path).lstrip("/")).resolve() if url.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{where}: {link} (no such file)")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in pages[target].ids:
                broken.append(f"{where}: {link} (no anchor #{url.fragment})")
    return broken, external


def well_formed(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme == "https" and "." in parsed.netloc and not re.search(r"\s", url)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_internal_links_and_anchors_resolve(site):
    broken, _ = check_links(site)
    assert not broken, "\n".join(broken)
    assert (site / "troubleshooting" / "index.html").exists()


def test_external_links_are_well_formed_https(site):
    _, external = check_links(site)
    assert any("docs.astral.sh/uv" in url for url in external)  # the docs' own links are seen
    bad = sorted({url for url in external if not well_formed(url)})
    assert not bad, bad


def test_link_check_catches_broken_links_and_anchors(tmp_path):
    """The checker itself: a missing page, a missing anchor and a non-https URL are all reported."""
    (tmp_path / "a").mkdir()
    (tmp_path / "index.html").write_text(
        '<h1 id="top">x</h1><a href="a/">ok</a><a href="a/#here">ok</a><a href="#top">ok</a>'
        '<a href="missing/">no page</a><a href="a/#gone">no anchor</a><a href="http://example.com">plain</a>'
    )
    (tmp_path / "a" / "index.html").write_text('<p id="here"><a href="../index.html#top">back</a></p>')
    broken, external = check_links(tmp_path)
    assert sorted(broken) == ["index.html: a/#gone (no anchor #gone)", "index.html: missing/ (no such file)"]
    assert [url for url in external if not well_formed(url)] == ["http://example.com"]


def _ids(site: Path, page: str) -> set[str]:
    return read_site(site / page)[site / page / "index.html"].ids


def test_reference_lists_every_question(site):
    questions = yaml.safe_load((ROOT / "copier.yml").read_text())
    asked = [name for name, spec in questions.items() if not name.startswith("_") and spec.get("when") is not False]
    assert "timeout_seconds" in asked
    missing = set(asked) - _ids(site, "reference/questions")
    assert not missing, f"questions missing from the reference: {sorted(missing)}"


def test_reference_lists_every_make_target(site):
    documented = re.findall(r"^([a-z-]+):.*## ", (ROOT / "template" / "Makefile.jinja").read_text(), re.M)
    assert {"deploy", "spawn", "local-up"} <= set(documented)
    missing = set(documented) - _ids(site, "reference/make")
    assert not missing, f"make targets missing from the reference: {sorted(missing)}"
    root_targets = re.findall(r"^([a-z-]+):.*## ", (ROOT / "Makefile").read_text(), re.M)
    assert {f"repo-{t}" for t in root_targets} <= _ids(site, "reference/make")


def test_reference_has_every_cli_command_and_emulator_rpc(site):
    cli = (ROOT / "template" / "{{package_name}}" / "cli.py").read_text()
    commands = re.findall(r'^@app\.command\((?:name="(\w+)")?\)\ndef (\w+)\(', cli, re.M)
    commands = [named or function for named, function in commands]
    assert {"spawn", "status", "retry", "guard"} <= set(commands)
    assert {"cli", *(f"cli-{c}" for c in commands)} <= _ids(site, "reference/cli")
    cli_page = (site / "reference" / "cli" / "index.html").read_text()
    assert "--allow-stale" in cli_page and "--respawn-unknown" in cli_page  # the real --help text

    handlers = ROOT / "emulator" / "src" / "modal_emu" / "handlers"
    rpcs = {m for f in handlers.glob("*.py") for m in re.findall(r"^@rpc\nasync def (\w+)\(", f.read_text(), re.M)}
    assert "FunctionCreate" in rpcs
    emulator_page = (site / "reference" / "emulator" / "index.html").read_text()
    missing = {name for name in rpcs if f"<code>{name}</code>" not in emulator_page}
    assert not missing, f"RPCs missing from the reference: {sorted(missing)}"
    pin = re.search(r'"(modal[<>=~][^"]*)"', (ROOT / "emulator" / "pyproject.toml").read_text()).group(1)
    assert pin.replace("<", "&lt;").replace(">", "&gt;") in emulator_page
