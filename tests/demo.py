"""`make demo`: the main job, offline. Renders a project and runs its whole flow
against the local Modal emulator, printing each step."""

from __future__ import annotations

import shutil
import sys
import time
import warnings

from tests.flow import ROOT, FlowError, Project, render, run_flow


def main() -> int:
    warnings.simplefilter("ignore")  # copier's note that the checkout has uncommitted changes
    workdir = ROOT / ".demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    started = time.monotonic()
    try:
        project = workdir / "demo-project"
        print(f"Rendering the template with defaults into {project}", flush=True)
        run_flow(Project(render(project), say=lambda line: print(line, flush=True)))
    except FlowError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s. The project is in {workdir / 'demo-project'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
