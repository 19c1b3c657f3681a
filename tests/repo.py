"""This template as a git repository that copier can copy from and update to: its releases (from
tests/releases.bundle) plus the working tree (uncommitted edits included) committed on top, as the next
release. `python -m tests.repo` rewrites the bundle from the local v* tags."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from packaging.version import Version

from tests.project import ROOT

# An identity for the commits of tests (and of copier update's own scratch repositories): CI runners have none.
IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
}
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "init.defaultBranch=main"]
FIRST_RELEASE = "v0.1.0"


# The released versions of this template (see write_releases_bundle): git tags do not travel with a
# branch, so the update tests read the releases from this file, never from the clone's tags.
RELEASES = ROOT / "tests" / "releases.bundle"
# Fixed dates for the bundle's commits: the same tags give the same bundle, whoever runs it.
RELEASE_DATE = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    run_env = {**os.environ, **IDENTITY, **(env or {})} if env else None
    return subprocess.run(
        [*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True, env=run_env
    ).stdout.strip()


def copy_working_tree(dst: Path) -> None:
    """The files git would commit from this checkout now (tracked and new, not ignored), into dst."""
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT)
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)


def bundle_tags(bundle: Path = RELEASES) -> dict[str, str]:
    """tag -> commit of each release in the bundle, oldest first."""
    heads = git("bundle", "list-heads", str(bundle), cwd=ROOT).splitlines()
    tags = {ref.removeprefix("refs/tags/"): sha for sha, ref in (line.split() for line in heads)}
    return dict(sorted(tags.items(), key=lambda item: Version(item[0])))


def released_tags() -> list[str]:
    """The released versions, oldest first, from tests/releases.bundle: a clone carries no tags of its
    own when only its branch was pushed or fetched, and it may be shallow. A missing bundle or first
    release is an error, never a skip: the update tests would then prove nothing."""
    if not RELEASES.is_file():
        raise AssertionError(f"{RELEASES} is missing: run `make releases-bundle` in a clone with the v* tags")
    tags = list(bundle_tags())
    if FIRST_RELEASE not in tags:
        raise AssertionError(f"{RELEASES} has no {FIRST_RELEASE}: run `make releases-bundle`")
    return tags


def write_releases_bundle(dst: Path = RELEASES) -> list[str]:
    """Each local v* tag's files as one commit on top of the previous release's (no other history, so the
    bundle stays small), written to dst with the tag names. `make releases-bundle` after tagging a release."""
    tags = sorted(git("tag", "--list", "v*", cwd=ROOT).split(), key=Version)
    if FIRST_RELEASE not in tags:
        raise SystemExit(f"no tag {FIRST_RELEASE} in {ROOT}: the bundle is made from the release tags")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        git("init", "-q", "--bare", str(scratch), cwd=ROOT)
        parent: list[str] = []
        for tag in tags:
            git("fetch", "-q", "--no-tags", str(ROOT), f"refs/tags/{tag}:refs/original/{tag}", cwd=scratch)
            tree = git("rev-parse", f"refs/original/{tag}^{{tree}}", cwd=scratch)
            message = git("for-each-ref", "--format=%(contents)", f"refs/tags/{tag}", cwd=ROOT) or tag
            commit = git("commit-tree", tree, *parent, "-m", message, cwd=scratch, env=RELEASE_DATE)
            git("tag", tag, commit, cwd=scratch)
            parent = ["-p", commit]
        git("bundle", "create", "-q", str(dst.resolve()), *tags, cwd=scratch)
    return tags


def next_version(tags: list[str]) -> str:
    """A version above every released one: what the working tree would be released as."""
    newest = Version(tags[-1])
    return f"v{newest.major}.{newest.minor + 1}.0"


def repo_with_working_tree(dst: Path) -> tuple[Path, str]:
    """A repository holding the release tags of tests/releases.bundle, then the working tree committed and tagged
    with the next version (so `copier update` to HEAD updates to exactly what is checked out)."""
    tags = released_tags()
    git("init", "-q", str(dst), cwd=dst.parent)
    git("fetch", "-q", str(RELEASES), "refs/tags/*:refs/tags/*", cwd=dst)
    git("checkout", "-q", "-b", "main", tags[-1], cwd=dst)
    git("rm", "-rq", ".", cwd=dst)
    copy_working_tree(dst)
    git("add", "-A", cwd=dst)
    git("commit", "-q", "--allow-empty", "-m", "the working tree", cwd=dst)
    head = next_version(tags)
    git("tag", "-a", head, "-m", head, cwd=dst)
    return dst, head


if __name__ == "__main__":
    print("tests/releases.bundle:", " ".join(write_releases_bundle()))
