"""This template as a git repository that copier can copy from and update to: its released tags
plus the working tree (uncommitted edits included) committed on top, as the next release."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from packaging.version import Version

from tests.flow import ROOT

# An identity for the commits of tests (and of copier update's own scratch repositories): CI runners have none.
IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
}
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "init.defaultBranch=main"]
FIRST_RELEASE = "v0.1.0"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def copy_working_tree(dst: Path) -> None:
    """The files git would commit from this checkout now (tracked and new, not ignored), into dst."""
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT)
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)


def released_tags() -> list[str]:
    """This checkout's release tags, oldest first. A missing first release is an error, never a skip:
    a shallow CI clone has no tags, and the update tests would then prove nothing."""
    tags = sorted(git("tag", "--list", "v*", cwd=ROOT).split(), key=lambda t: Version(t))
    if FIRST_RELEASE not in tags:
        raise AssertionError(
            f"git tag {FIRST_RELEASE} is missing from {ROOT} (a shallow clone?): "
            "run `git fetch --tags --unshallow origin` (.ci/run tries it) and test again"
        )
    return tags


def next_version(tags: list[str]) -> str:
    """A version above every released one: what the working tree would be released as."""
    newest = Version(tags[-1])
    return f"v{newest.major}.{newest.minor + 1}.0"


def repo_with_working_tree(dst: Path) -> tuple[Path, str]:
    """A repository holding this checkout's release tags, then the working tree committed and tagged
    with the next version (so `copier update` to HEAD updates to exactly what is checked out)."""
    tags = released_tags()
    git("init", "-q", str(dst), cwd=dst.parent)
    for tag in tags:
        git("fetch", "-q", str(ROOT), f"refs/tags/{tag}:refs/tags/{tag}", cwd=dst)
    git("checkout", "-q", "-b", "main", tags[-1], cwd=dst)
    git("rm", "-rq", ".", cwd=dst)
    copy_working_tree(dst)
    git("add", "-A", cwd=dst)
    git("commit", "-q", "--allow-empty", "-m", "the working tree", cwd=dst)
    head = next_version(tags)
    git("tag", "-a", head, "-m", head, cwd=dst)
    return dst, head
