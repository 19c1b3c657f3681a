"""reference/emulator.md: the RPCs the emulator answers and the modal releases it serves.

Read from the emulator itself: the ``@rpc`` handler registry (importing ``modal_emu.handlers``
registers every handler), ``emulator/pyproject.toml``'s modal pin and ``modal_emu serve|preempt --help``.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

from reference_render import clean_env


def modal_pin(pyproject: Path) -> str:
    """The modal requirement of the emulator package, e.g. ``modal>=1.6.4,<1.7``."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return next(d for d in deps if d.replace(" ", "").startswith(("modal>", "modal=", "modal<", "modal~")))


def handlers() -> list[tuple[str, str, bool]]:
    """(RPC, area, streaming) for every registered handler, by area then name."""
    import modal_emu.handlers  # noqa: F401 - registers the handlers
    from modal_emu.rpc import HANDLERS, is_streaming

    rows = [(name, fn.__module__.rsplit(".", 1)[-1], is_streaming(fn)) for name, fn in HANDLERS.items()]
    return sorted(rows, key=lambda row: (row[1], row[0]))


def service_rpcs() -> list[str]:
    """Every RPC of the ModalClient service in the installed client's protocol."""
    from modal_proto import api_pb2

    return sorted(m.name for m in api_pb2.DESCRIPTOR.services_by_name["ModalClient"].methods)


def command_help(command: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "modal_emu", command, "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.rstrip()


def page(emulator_pyproject: Path) -> str:
    from modal_emu.unsupported import FEATURES

    rows = handlers()
    known = set(service_rpcs())
    implemented = {name for name, _, _ in rows}
    out = [
        "# Emulator",
        "",
        "Generated when this site is built, from the emulator's code.",
        "",
        "## modal versions served {#versions}",
        "",
        f"- The emulator package requires **`{modal_pin(emulator_pyproject)}`** (`emulator/pyproject.toml`):",
        "  the client's protocol changes between minor releases, so it serves the releases it was tested with.",
        f"- This site was built with modal **{importlib.metadata.version('modal')}** installed; the RPC counts",
        "  below are against that client's `ModalClient` service.",
        "",
        "## `modal_emu serve` {#serve}",
        "",
        "```text",
        command_help("serve"),
        "```",
        "",
        "## `modal_emu preempt` {#preempt}",
        "",
        "```text",
        command_help("preempt"),
        "```",
        "",
        "## Implemented RPCs {#rpcs}",
        "",
        f"{len(implemented)} of the client's {len(known)} RPCs have a handler (`@rpc` in",
        "`emulator/src/modal_emu/handlers/<area>.py`); every other RPC answers `UNIMPLEMENTED` with its name,",
        "and the server log names it.",
        "",
        "| RPC | area | streaming |",
        "|---|---|---|",
    ]
    out += [f"| `{name}` | {area} | {'yes' if streaming else ''} |" for name, area, streaming in rows]
    stray = sorted(implemented - known)
    if stray:
        out += ["", "Handlers for RPCs this client does not have: " + ", ".join(f"`{n}`" for n in stray)]
    out += [
        "",
        "## Features left out on purpose {#left-out}",
        "",
        "An RPC whose name starts with one of these prefixes is refused at once with a message naming the feature:",
        "",
        "| RPC prefix | feature |",
        "|---|---|",
        *(f"| `{prefix}` | {feature} |" for prefix, feature in sorted(FEATURES.items())),
    ]
    return "\n".join(out) + "\n"
