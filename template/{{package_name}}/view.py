"""How jobs are shown: the status table, the one-line counts, the live view and results/summary.csv.

Values are shown as text, never read as rich markup: a task id or an error like ``[/x]`` stays as written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import cost, modal_api, outputs, settings
from . import job as J

console = Console()  # tables: stdout
COLORS = {
    J.PENDING: "yellow",
    J.SUCCEEDED: "green",
    J.FAILED: "red",
    J.TIMEOUT: "red",
    J.LOST: "red",
    J.UNKNOWN: "magenta",
    J.SPAWNING: "magenta",
    J.CANCELLED: "dim",
}
COLUMNS = ("task", "state", "call id", "age", "cost", "detail")
BOXED_ROWS = 100  # above this, plain aligned lines: a boxed table of 1,000 rows takes rich a second
FEW = 5  # messages name this many tasks, then say how many more (a sweep has thousands)


def some(ids: list[str]) -> str:
    """``a, b, c, d, e and 2995 more``: the first :data:`FEW` ids, and how many more there are."""
    more = f" and {len(ids) - FEW} more" if len(ids) > FEW else ""
    return ", ".join(ids[:FEW]) + more


def show(
    jobs: list[J.Job], as_json: bool, phases: dict[str, str] | None = None, spending: cost.Spending | None = None
) -> None:
    """The table, the counts and the cost line, or (``as_json``) one JSON object per job: each with its
    task's ``cost_usd`` and the ``sweep``'s total (the same in every row)."""
    phases = phases or {}
    if as_json:
        rows = [{**j.as_dict(), **({"phase": phases[j.call_id]} if j.call_id in phases else {})} for j in jobs]
        if spending is not None:
            sweep = spending.as_dict()
            rows = [{**r, "cost_usd": round(spending.by_task.get(r["task_id"], 0.0), 6), "sweep": sweep} for r in rows]
        print(json.dumps(rows, indent=2))
        return
    console.print(table(jobs, phases, spending), soft_wrap=True)  # long lines stay whole (and it is faster)
    console.print(counts(jobs, phases))
    if spending is not None:
        console.print(spending.line(), soft_wrap=True, markup=False, highlight=False)


def counts(jobs: list[J.Job], phases: dict[str, str] | None = None) -> str:
    """One line: how many tasks are in each state; pending split into running and queued when known."""
    by_state = {s: sum(j.state == s for j in jobs) for s in J.STATES}
    where = [phases[j.call_id] for j in jobs if phases and j.state == J.PENDING and j.call_id in phases]
    parts = [(where.count(p), p) for p in (modal_api.RUNNING, modal_api.QUEUED)]
    if where:  # the call graph did not answer for the others
        parts.append((by_state[J.PENDING] - len(where), "not reported"))
    split = ", ".join(f"{n} {p}" for n, p in parts if n)
    return ", ".join(f"{n} {s}" + (f" ({split})" if s == J.PENDING and split else "") for s, n in by_state.items() if n)


def usd(amount: float | None) -> str:
    return "-" if amount is None else f"${amount:,.2f}"


def table(
    jobs: list[J.Job], phases: dict[str, str] | None = None, spending: cost.Spending | None = None
) -> Table | Text:
    now = time.time()
    by_task = spending.by_task if spending is not None else {}
    rows = []
    for j in jobs:
        detail = j.error or (os.path.relpath(j.result_path, settings.PROJECT_ROOT) if j.result_path else "")
        where = f" ({phases[j.call_id]})" if phases and j.call_id in phases else ""
        age = f"{(now - j.spawned_at) / 60:.1f} min"
        rows.append((j.task_id, j.state + where, j.call_id or "-", age, usd(by_task.get(j.task_id)), detail))
    colors = [COLORS.get(j.state, "white") for j in jobs]
    # A box on a terminal; in a pipe or a CI log, lines that are never cut (call ids stay whole).
    if len(rows) <= BOXED_ROWS and console.is_terminal:
        boxed = Table(*COLUMNS)
        for row, color in zip(rows, colors, strict=True):
            boxed.add_row(Text(row[0]), Text(row[1], style=color), *map(Text, row[2:]))
        return boxed
    widths = [max([len(col), *(len(row[i]) for row in rows)]) for i, col in enumerate(COLUMNS)]
    lines = Text("  ".join(col.ljust(w) for col, w in zip(COLUMNS, widths, strict=True)).rstrip() + "\n", style="bold")
    for row, color in zip(rows, colors, strict=True):
        lines.append(row[0].ljust(widths[0]) + "  ")
        lines.append(row[1].ljust(widths[1]), style=color)
        rest = "  ".join(cell.ljust(w) for cell, w in zip(row[2:], widths[2:], strict=True))
        lines.append(f"  {rest}".rstrip() + "\n")
    lines.rstrip()
    return lines


def live(found: J.Refresh, spending: cost.Spending | None = None) -> Table:
    """The counts, then as many rows as the terminal has lines: the jobs still to watch (pending,
    failed, ...) first, finished successes last; the rest is summarised."""
    note = Text(f"\n{settings.WHERE}'s API could not be reached: {found.unreachable}", style="yellow")
    room = max(console.height - 8, 5)
    ordered = sorted(found.jobs, key=lambda j: j.state == J.SUCCEEDED)  # stable: spawn order within each
    shown, hidden = ordered[:room], len(ordered) - room
    grid = Table.grid()
    grid.add_row(Text(counts(found.jobs, found.phases)) + (note if found.unreachable else Text("")))
    grid.add_row(table(shown, found.phases, spending))
    if hidden > 0:
        grid.add_row(f"... and {hidden} more (`make status` lists every task)")
    if spending is not None:
        grid.add_row(Text(spending.line()))
    return grid


def write_summary(done: list[J.Job], values: dict, spending: cost.Spending) -> str:
    """results/summary.csv: each task's parameters and cost (all its jobs, ``cost_usd``; the sweep's
    total so far in ``sweep_cost_usd``) next to the scalar fields of its result (outputs.py)."""
    rows = []
    for j in done:
        row = {"task_id": j.task_id, **{f"param.{k}": v for k, v in j.params_dict().items()}}
        row["cost_usd"] = round(spending.by_task.get(j.task_id, 0.0), 6)
        row["sweep_cost_usd"] = round(spending.spent_usd, 6)
        row.update(outputs.scalar_fields(values[j.task_id]))
        rows.append(row)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
    writer.writeheader()
    writer.writerows(rows)
    path = settings.RESULTS_DIR / "summary.csv"
    outputs.write_text(path, text.getvalue())
    return os.path.relpath(path, settings.PROJECT_ROOT)
