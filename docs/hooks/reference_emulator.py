"""reference/emulator.md: every RPC of the client, served or refused; every field of a function's
definition, emulated, refused, warned or irrelevant; the modal releases the emulator serves.

Read from the emulator itself: the ``@rpc`` handler registry (importing ``modal_emu.handlers``
registers every handler), ``modal_emu.unsupported`` (refused features), ``modal_emu.definition``
(the definition tables), ``emulator/pyproject.toml``'s modal pin and ``modal_emu serve|preempt --help``.
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


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def page(emulator_pyproject: Path) -> str:
    from modal_emu.definition import TABLES
    from modal_emu.unsupported import FEATURES, feature

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
        "## RPCs, served or refused {#rpcs}",
        "",
        f"{len(implemented & known)} of the {len(known)} RPCs of the client's `ModalClient` service have a handler",
        "(`@rpc` in `emulator/src/modal_emu/handlers/<area>.py`). Every other RPC answers `UNIMPLEMENTED` at once:",
        "with the feature's name where the RPC belongs to a feature left out on purpose (below), else with the",
        "RPC's name; the server log names it too.",
        "",
        "| RPC | answer |",
        "|---|---|",
    ]
    areas = {name: (area, streaming) for name, area, streaming in rows}
    for name in sorted(known | implemented):
        if name in areas:
            area, streaming = areas[name]
            answer = f"served ({area}{', streaming' if streaming else ''})"
        else:
            answer = f"refused: {feature(name) or 'not implemented'}"
        out.append(f"| `{name}` | {answer} |")
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
        "",
        "## Function definitions, field by field {#definition}",
        "",
        "What the emulator does with every field of a function's definition (`api_pb2.Function`, sent by",
        "`modal deploy`; a class is a service function with `MethodDefinition`s) and of `Cls.with_options(...)`",
        "(`api_pb2.FunctionOptions`), from `emulator/src/modal_emu/definition.py`:",
        "",
        "- **emulated**: done as Modal does it;",
        "- **refused**: a deploy (for an option: the call) that sets it fails with one line naming the feature;",
        "- **warned**: accepted, and `modal deploy` prints a warning naming it;",
        "- **irrelevant**: no meaning on one local machine, for the reason given.",
        "",
        "A test fails when the installed modal has a field this table does not classify.",
    ]
    for message_name, (_, table) in TABLES.items():
        out += ["", f"### `{message_name}` {{#definition-{message_name.lower()}}}", "", "| field | | what, or why |"]
        out += ["|---|---|---|"]
        out += [f"| `{name}` | {field.status} | {_cell(field.note)} |" for name, field in sorted(table.items())]
    return "\n".join(out) + "\n"
