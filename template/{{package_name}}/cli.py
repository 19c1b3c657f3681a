"""The project's commands: ``python -m PACKAGE COMMAND`` (the Makefile's targets call them).

- deploy                       deploy modal_app.py, tagged with the code hash
- spawn [TASKS] [--retry]      spawn every task of a tasks or grid file onto the deployed version
- retry                        a new job for every task that failed, timed out, was lost or expired
- status / watch / wait        look at the jobs (poll each pending one; --json for scripts)
- results                      save the finished results under results/ (+ summary.csv)
- logs TASK|CALL [--follow]    a job's stdout/stderr
- cancel [TASK...]             cancel pending jobs
- doctor / guard               what is wrong and how to fix it / local vs deployed code

Messages go to stderr, so that ``--json`` output on stdout stays parseable. When Modal's API
cannot be reached, nothing is recorded: the jobs stay pending, the command says so once and
exits with :data:`UNREACHABLE_EXIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import cost, guard, modal_api, outputs, settings, spawner, view
from . import job as J
from . import ledger as L
from .sweep import is_grid, load_grid
from .tasks import Task, TaskFileError, load_tasks

console = view.console  # tables: stdout
err = Console(stderr=True)  # messages: stderr
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=f"The project's commands (the Makefile's targets call them): python -m {__package__} COMMAND",
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
UNREACHABLE_EXIT = 3
make = settings.make


def say(message: str) -> None:
    """Print to the terminal, which may have been closed (SIGHUP): the work matters, not the words."""
    try:
        err.print(message, soft_wrap=True, highlight=False)
    except OSError:
        pass


def fail(message: str, code: int = 1) -> None:
    """Stop with ``message``, each of its lines an error, printed as written (``[/x]`` is no rich markup)."""
    for line in message.splitlines():
        say(f"[bold red]error:[/] {escape(line)}")
    raise typer.Exit(code)


def _ledger(as_json: bool, empty_json: str) -> L.Ledger:
    ledger = L.Ledger(settings.LEDGER_PATH)
    if not ledger.jobs():
        err.print(f"no jobs in the ledger yet: run {make('spawn')}", style="yellow")
        if as_json:
            print(empty_json)
        raise typer.Exit(0)
    return ledger


def _refresh(ledger: L.Ledger, phases: bool = False) -> J.Refresh:
    return asyncio.run(J.refresh(ledger, phases=phases))


def _watch_budget(ledger: L.Ledger, found: J.Refresh) -> cost.Spending:
    """The monitor's part of the budget (cost.stop_queued): cancel the queued jobs once it would be
    passed, say so in one line, and bring ``found.jobs`` up to date. The sweep's spending."""
    try:
        spent, stopped = asyncio.run(cost.stop_queued(ledger, found.phases))
    except modal_api.ApiUnreachable as exc:
        _warn_unreachable(str(exc), 0)
        return cost.spending(ledger.jobs(latest_only=False), found.phases)
    if stopped:
        say(
            f"[bold yellow]{escape(spent.why())}:[/] cancelled {len(stopped)} queued job(s): "
            + escape(", ".join(j.task_id for j in stopped))
        )
        found.jobs = ledger.jobs()
    return spent


def _warn_unreachable(unreachable: str | None, unchecked: int) -> None:
    if unreachable:
        err.print(
            f"[bold yellow]{settings.WHERE}'s API could not be reached[/] ({escape(unreachable)}): {unchecked} "
            "pending job(s) not checked and left pending; the jobs themselves are not affected. Try again later.",
            soft_wrap=True,
            highlight=False,
        )


# ------------------------------------------------------------------ deploy
@app.command()
def deploy() -> None:
    """Deploy modal_app.py, tagged with the code hash (after EVERY code change)."""
    code = guard.code_hash()
    proc = subprocess.run(modal_api.deploy_command(code), cwd=settings.PROJECT_ROOT, check=False)
    if proc.returncode != 0:
        fail(f"`modal deploy` failed (exit {proc.returncode}); nothing changed on {settings.WHERE}")
    marker = settings.PROJECT_ROOT / ".jobs" / "deployed-hash"
    outputs.write_text(marker, code + "\n")
    print(f"deployed code {code}")


# ------------------------------------------------------------------- spawn
def check_cost(tasks: list[Task], yes: bool) -> None:
    """Print the worst case; above COST_CONFIRM_USD, spawn only after a yes (never without a terminal)."""
    try:
        worst = cost.worst_case(len(tasks))
    except cost.UnknownRate as exc:
        fail(f"{exc}; nothing was spawned")
    rehearse = "JOB_COST_CONFIRM_USD" in os.environ  # set it to rehearse the check on the emulator
    if settings.LOCAL and not rehearse:  # the emulator is free
        err.print(f"local emulator: no cost (on Modal, {worst})", soft_wrap=True, highlight=False)
        return
    err.print(str(worst), soft_wrap=True, highlight=False)
    limit = settings.COST_CONFIRM_USD
    if worst.usd <= limit or yes:
        return
    above = f"the worst case ${worst.usd:,.2f} is above COST_CONFIRM_USD = {limit:g} (in settings.py)"
    if not sys.stdin.isatty():
        fail(f"{above}, and no terminal to confirm it on: nothing was spawned. {make('spawn', '--yes')} spawns anyway")
    try:
        confirmed = typer.confirm(f"{above}. Spawn {len(tasks)} task(s)?", default=False, err=True)
    except typer.Abort:
        confirmed = False
    if not confirmed:
        fail("not confirmed: nothing was spawned")


def check_budget(ledger: L.Ledger, adding: int, over_budget: bool) -> None:
    """Refuse to spawn past the sweep's budget: when it is already passed, or (``adding``: a retry)
    when the worst case of the tasks to add would pass it. Every pending job counts as running here."""
    found = cost.spending(ledger.jobs(latest_only=False))
    if not found.over_budget(adding):
        return
    more = f" + worst case ${cost.worst_case(adding).usd:,.2f} of the {adding} task(s) to retry" if adding else ""
    why = found.why(more)
    command = make("retry" if adding else "spawn", "--over-budget")
    if over_budget:
        err.print(f"[yellow]{escape(why)}: spawning anyway (--over-budget)[/]", soft_wrap=True, highlight=False)
        return
    fail(f"{why}; nothing was spawned. {command} spawns anyway")


def pinned(allow_stale: bool, stale_fix: str = "") -> tuple[str, int]:
    """The code hash and the deployed version to spawn onto (see guard.pin)."""
    history = modal_api.History()  # runs while the code is hashed
    local = guard.code_hash()
    try:
        deployment = guard.pin(local, history.result(), allow_stale, stale_fix)
    except guard.StaleDeploymentError as exc:
        fail(str(exc))
    except modal_api.ApiUnreachable as exc:
        fail(f"{exc}; nothing was spawned")
    if deployment.tag != local:
        err.print(
            f"[bold yellow]WARNING --allow-stale:[/] your code is {local}, but the jobs run the deployed "
            f"version {deployment.version} (code {deployment.tag or 'untagged'})",
            soft_wrap=True,
        )
    # An untagged deployment (a `modal deploy` by hand) has no hash to check inside the job: the version pins it.
    return deployment.tag or "", deployment.version


async def _spawn(tasks: list[Task], ledger: L.Ledger, code: str, version: int, concurrency: int) -> spawner.SpawnReport:
    """Spawn with Ctrl+C (and a closed terminal) turned into "start nothing new, record what is in flight"."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        first = not stop.is_set()
        stop.set()  # first: the terminal may be gone, and printing may fail
        if first:
            say("\n[yellow]interrupted: starting no new spawns; recording the ones in flight...[/]")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, interrupted)
    fn = await modal_api.deployed_function(version)
    done = 0
    # On a terminal a progress bar; in a log (CI, nohup) one line per 100 spawns.
    bar = Progress(TextColumn("spawning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err)
    progress_id = bar.add_task("spawn", total=len(tasks))

    def progress(task: Task, call_id: str) -> None:
        nonlocal done
        done += 1
        if err.is_terminal:
            bar.update(progress_id, completed=done)
        elif done == len(tasks) or done % 100 == 0:
            err.print(f"spawned {done}/{len(tasks)}: {task.id} -> {call_id}", highlight=False, markup=False)

    told: set[str] = set()

    def locked(why: str) -> None:
        if why not in told:
            told.add(why)
            say(f"[yellow]{escape(why)}; waiting (the spawns in flight are kept and will be recorded)[/]")

    with bar if err.is_terminal else contextlib.nullcontext():
        return await spawner.spawn_tasks(
            fn,
            tasks,
            ledger,
            expected_hash=code,
            version=version,
            concurrency=concurrency,
            stop=stop,
            on_spawn=progress,
            on_locked=locked,
        )


@app.command()
def spawn(
    tasks_file: Annotated[
        Path, typer.Argument(help="Tasks (.jsonl, one JSON object per line, each with an 'id') or a grid (.yaml/.json)")
    ] = Path("tasks.jsonl"),
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Spawn requests in flight at once.")] = (
        settings.SPAWN_CONCURRENCY
    ),
    allow_stale: Annotated[
        bool,
        typer.Option("--allow-stale", help="Spawn onto the newest deployed version, even if its code is not yours."),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Respawn tasks already pending or succeeded.")] = False,
    respawn_unknown: Annotated[
        bool, typer.Option("--respawn-unknown", help="Respawn tasks whose earlier spawn has an unknown outcome.")
    ] = False,
    retry: Annotated[
        bool, typer.Option("--retry", help="Instead of a tasks file: what `retry` spawns (see its help).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the spawned calls as JSON on stdout.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Spawn even if the worst-case cost is above COST_CONFIRM_USD.")
    ] = False,
    over_budget: Annotated[
        bool, typer.Option("--over-budget", help="Spawn even if it would pass the sweep's budget (JOB_BUDGET_USD).")
    ] = False,
) -> None:
    """Spawn every task onto the deployed version of your code, then let go.

    Every task is checked (workload.Params) before anything is spawned, and the worst-case cost is
    printed. The jobs run whatever happens to this terminal; their call ids go to the ledger. One
    spawner at a time per ledger; Ctrl+C starts nothing new, records what is in flight, and a
    re-run spawns only the rest.
    """
    try:
        _spawn_all(
            None if retry else tasks_file, concurrency, allow_stale, force, respawn_unknown, as_json, yes, over_budget
        )
    except KeyboardInterrupt:  # before or after the spawning itself, where Ctrl+C is not deferred
        fail(
            f"interrupted; every call spawned so far is in the ledger. Re-running {make('spawn')} is safe: "
            "it spawns only what is not yet spawned.",
            code=130,
        )


@app.command(name="retry")
def retry_(
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Spawn requests in flight at once.")] = (
        settings.SPAWN_CONCURRENCY
    ),
    allow_stale: Annotated[bool, typer.Option("--allow-stale", help="As for spawn.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the spawned calls as JSON on stdout.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="As for spawn.")] = False,
    over_budget: Annotated[bool, typer.Option("--over-budget", help="As for spawn.")] = False,
) -> None:
    """A new job for every task whose newest job failed, timed out, was lost or expired (earlier
    jobs stay in the ledger); refused when their worst case would pass the budget (JOB_BUDGET_USD)."""
    _ledger(as_json, "[]")  # an empty one: said as the other commands say it
    spawn(
        retry=True, concurrency=concurrency, allow_stale=allow_stale, as_json=as_json, yes=yes, over_budget=over_budget
    )


def _spawn_all(
    tasks_file: Path | None,
    concurrency: int,
    allow_stale: bool,
    force: bool,
    respawn_unknown: bool,
    as_json: bool,
    yes: bool,
    over_budget: bool = False,
) -> None:
    retrying = tasks_file is None
    try:
        tasks = None if tasks_file is None else (load_grid if is_grid(tasks_file) else load_tasks)(tasks_file)
    except TaskFileError as exc:
        fail(str(exc))
    flags = {"--force": force, "--respawn-unknown": respawn_unknown, "--json": as_json, "--yes": yes}
    flags["--over-budget"] = over_budget
    args = [f"--concurrency {concurrency}"] if concurrency != settings.SPAWN_CONCURRENCY else []
    args += [*(flag for flag, given in flags.items() if given), "--allow-stale"]  # the user's own, and the fix
    if tasks_file is None:
        stale_fix = make("retry", " ".join(args))
    else:
        stale_fix = make("spawn", " ".join(args), "" if tasks_file == Path("tasks.jsonl") else str(tasks_file))
    code, version = pinned(allow_stale, stale_fix)
    ledger = L.Ledger(settings.LEDGER_PATH)
    try:
        with ledger.spawn_lock():
            if tasks is None:  # retry: read under the lock, so that two retries never double an attempt
                tasks = spawner.retryable(ledger)
            choice = spawner.choose(tasks, ledger, force, respawn_unknown)
            if choice.unknown:
                err.print(
                    f"[yellow]skipping {len(choice.unknown)} task(s) whose earlier spawn has an unknown outcome[/] "
                    f"(they may be running on {settings.WHERE}; {make('spawn', '--respawn-unknown')} spawns them "
                    "again): " + view.some(choice.unknown),
                    soft_wrap=True,
                )
            if choice.active:
                err.print(
                    f"skipping {len(choice.active)} task(s) already pending or done ({make('spawn', '--force')} "
                    "respawns them): " + view.some(choice.active),
                    soft_wrap=True,
                    markup=False,
                )
            if choice.changed:
                say(
                    f"[yellow]{len(choice.changed)} of them have other parameters than their recorded job[/] "
                    f"({escape(make('spawn', '--force'))} spawns them with the new ones, or give them a new id): "
                    + escape(view.some(choice.changed))
                )
            if not choice.todo:
                err.print("nothing to spawn")
                if as_json:
                    print("[]")
                raise typer.Exit(0)
            check_cost(choice.todo, yes)
            check_budget(ledger, len(choice.todo) if retrying else 0, over_budget)
            report = asyncio.run(_spawn(choice.todo, ledger, code, version, concurrency))
    except L.LedgerGone as exc:
        print(json.dumps([{"task_id": t, "call_id": c} for t, c in exc.calls]))  # stdout: keep these
        fail(
            f"{exc}: the {len(exc.calls)} call(s) this spawn started are running on {settings.WHERE} but recorded "
            f"nowhere; their ids are printed above (JSON). Do not re-run {make('spawn')} before you have kept them: "
            "it would start those tasks again"
        )
    except L.LedgerError as exc:  # busy (another spawn), locked too long, or not writable
        fail(str(exc))
    except modal_api.NotDeployedError as exc:
        fail(str(exc))
    except modal_api.ApiUnreachable as exc:
        fail(f"{exc}; nothing was spawned")

    if as_json:
        try:
            print(json.dumps([{"task_id": t.id, "call_id": c} for t, c in report.spawned]))
        except OSError:
            pass
    summary = f"{len(report.spawned)} of {report.total} spawned and recorded"
    if report.unknown:
        say(
            f"[yellow]{len(report.unknown)} spawn(s) failed midway and may be running:[/] "
            + escape(view.some([t.id for t in report.unknown]))
            + f" ({make('status')} shows them; {make('spawn', '--respawn-unknown')} spawns them again, possibly twice)"
        )
    if report.error or report.interrupted:
        why = f"spawning stopped: {report.error}" if report.error else "interrupted"
        fail(
            f"{why}; {summary}, {report.not_started} not started. Re-running {make('spawn')} is safe: "
            "it spawns only what is not yet spawned.",
            code=130 if report.interrupted else 1,
        )
    say(
        f"[bold green]{summary}: running on {settings.WHERE} (version {version}).[/] You can close this terminal "
        f"now; check on them with {escape(make('status'))} or {escape(make('wait'))}."
    )


# ------------------------------------------------------------------ looking
@app.command()
def status(
    state: Annotated[
        list[str] | None, typer.Option(help=f"Show only jobs in this state ({', '.join(J.STATES)}).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Poll each pending job once (no waiting) and show the table; a pending job is shown as
    running or queued when Modal's call graph says which."""
    unknown_states = set(state or []) - set(J.STATES)
    if unknown_states:
        fail(f"--state {', '.join(sorted(unknown_states))}: choose from {', '.join(J.STATES)}", code=2)
    ledger = _ledger(as_json, "[]")
    found = _refresh(ledger, phases=True)
    spent = _watch_budget(ledger, found)
    shown = [j for j in found.jobs if not state or j.state in state]
    if state and not shown and not as_json:
        say(f"no job is {' or '.join(state)} ({view.counts(found.jobs)})")
    else:
        view.show(shown, as_json, found.phases, spent)
    _warn_unreachable(found.unreachable, found.unchecked)
    if found.unreachable:
        raise typer.Exit(UNREACHABLE_EXIT)


@app.command()
def wait(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds (0 = wait forever).")] = 0,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 2.0,
    as_json: JsonFlag = False,
) -> None:
    """Wait until every job has finished; exit 1 if any did not succeed.

    A lost connection does not end the wait: it is reported once, and polling goes on.
    """
    ledger = _ledger(as_json, "[]")
    deadline = time.monotonic() + timeout if timeout else None
    jobs = ledger.jobs()
    outage = None
    bar = Progress(TextColumn("waiting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err)
    with Progress(disable=True) if as_json else bar:
        progress_id = bar.add_task("jobs", total=len(jobs))
        while True:
            found = _refresh(ledger, phases=settings.BUDGET_USD is not None)  # queued jobs: for the budget
            spent = _watch_budget(ledger, found)
            jobs = found.jobs
            if found.unreachable and outage is None:
                _warn_unreachable(found.unreachable, found.unchecked)
            elif outage and not found.unreachable:
                err.print(f"{settings.WHERE}'s API answers again; polling goes on")
            outage = found.unreachable
            bar.update(progress_id, completed=sum(j.state in J.FINAL_STATES for j in jobs))
            if all(j.is_done for j in jobs):
                break
            if deadline and time.monotonic() > deadline:
                view.show(jobs, as_json, spending=spent)
                err.print(f"still pending after {timeout:g} s; the jobs keep running", style="yellow")
                raise typer.Exit(2)
            time.sleep(interval)
    view.show(jobs, as_json, spending=spent)
    if any(j.state != J.SUCCEEDED for j in jobs):
        raise typer.Exit(1)


@app.command()
def watch(
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 5.0,
    as_json: JsonFlag = False,
) -> None:
    """A live table, refreshed every INTERVAL seconds until every job has finished (Ctrl+C leaves;
    the jobs keep running). With --json: one line of counts per refresh."""
    ledger = _ledger(as_json, "")
    try:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while True:
                found = _refresh(ledger, phases=True)
                spent = _watch_budget(ledger, found)
                if as_json:
                    counts = {s: sum(j.state == s for j in found.jobs) for s in J.STATES}
                    line = {"time": time.time(), "counts": counts, "unreachable": found.unreachable}
                    print(json.dumps({**line, "cost": spent.as_dict()}))
                else:
                    live.update(view.live(found, spent), refresh=True)
                if all(j.is_done for j in found.jobs):
                    return
                time.sleep(interval)
    except KeyboardInterrupt:
        err.print("stopped watching; the jobs keep running")


@app.command()
def results(as_json: JsonFlag = False) -> None:
    """Save the results of the succeeded jobs as results/<task>.json, one row each in
    results/summary.csv (Modal keeps a result for 7 days: collect them before)."""
    ledger = _ledger(as_json, "{}")
    found = _refresh(ledger)
    saved, problems = asyncio.run(J.collect(ledger))
    values = {j.task_id: json.loads(Path(j.result_path).read_text(encoding="utf-8")) for j in saved}
    spent = cost.spending(ledger.jobs(latest_only=False), found.phases)
    summary = view.write_summary(saved, values, spent)
    if as_json:
        print(json.dumps(values, indent=2))
    else:
        for j in saved if len(saved) <= view.FEW else []:  # paths as they are: never wrapped nor read as markup
            console.print(f"{j.task_id}: {j.result_path}", soft_wrap=True, markup=False, highlight=False)
        console.print(
            f"{len(saved)} result(s) in {settings.RESULTS_DIR}; one row each in {summary}\n{spent.line()}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    for problem in problems:
        err.print(f"[yellow]not saved:[/] {escape(problem)}", soft_wrap=True, highlight=False)
    _warn_unreachable(found.unreachable, found.unchecked)
    if found.unreachable or problems:
        raise typer.Exit(UNREACHABLE_EXIT)


@app.command(name="cost")
def cost_report(as_json: JsonFlag = False) -> None:
    """What the sweep cost: our estimate beside Modal's own billing report for the App's time window
    (whole hours, UTC), and the difference. Fetches Modal's live rates first; offline, only our
    estimate, at the rates it says (the dated fallback table when no live ones were ever fetched)."""
    ledger = _ledger(as_json, "{}")
    jobs = ledger.jobs(latest_only=False)
    not_fetched = asyncio.run(cost.refresh_prices())
    spent = cost.spending(jobs)
    now = time.time()
    start = min(j.spawned_at for j in jobs)
    end = max(now if j.finished_at is None else j.finished_at for j in jobs)
    utc = timezone.utc  # noqa: UP017 - one spelling with the rest of the package
    hour_start = datetime.fromtimestamp(start // 3600 * 3600, utc)
    hour_end = datetime.fromtimestamp(-(-end // 3600) * 3600, utc)  # the report counts whole hours only
    billed, why = None, not_fetched
    if not_fetched is None:
        try:
            by_app = asyncio.run(modal_api.billing_report(hour_start, hour_end))
        except modal_api.ApiUnreachable as exc:
            by_app, why = None, f"billing report not read ({exc})"
        if by_app is None and why is None:
            why = "billing report not read: Modal gives no billing report to this workspace"
        billed = None if by_app is None else float(by_app.get(settings.APP_NAME, 0))
    line = {
        "app": settings.APP_NAME,
        "window": [hour_start.isoformat(), hour_end.isoformat()],
        "estimate_usd": round(spent.spent_usd, 6),
        "billed_usd": billed,
        "difference_usd": None if billed is None else round(spent.spent_usd - billed, 6),
        "rates": cost.prices().source,
        "not_compared": why,
    }
    if as_json:
        print(json.dumps(line, indent=2))
        return
    window = f"{hour_start:%Y-%m-%d %H:%M} to {hour_end:%Y-%m-%d %H:%M} UTC"
    text = f"{settings.APP_NAME}, {window}: our estimate ${spent.spent_usd:,.4f} (an upper bound: spawn to end)"
    if billed is not None:
        text += f"; Modal billed ${billed:,.4f}; difference ${spent.spent_usd - billed:+,.4f}"
    console.print(f"{text}\n{line['rates']}", soft_wrap=True, markup=False, highlight=False)
    if why:
        err.print(f"[yellow]only our estimate:[/] {escape(why)}", soft_wrap=True, highlight=False)


@app.command()
def logs(
    which: Annotated[str, typer.Argument(help="A task id (its newest job) or a call id (fc-...).")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing while the job runs.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The stdout/stderr of a job's newest call (or of one call), as Modal recorded it (`modal app logs`)."""
    jobs = _ledger(as_json, "{}").jobs(latest_only=False)
    by_task = {j.task_id: j for j in jobs}  # the newest job of each task (jobs come in spawn order)
    by_call = {c: j for j in jobs for c in [*j.links(), j.call_id] if c}
    job = by_task.get(which) or by_call.get(which)
    if job is None or job.call_id is None:
        fail(f"no job of task or call {which!r} in the ledger ({make('status')} lists them)")
    call_id = which if which in by_call else job.call_id
    if not (follow and job.state == J.PENDING):
        command = modal_api.logs_command(call_id, since=job.spawned_at)
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=settings.API_TIMEOUT_S + 30)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            fail(f"`modal app logs` failed: {last}", code=UNREACHABLE_EXIT)
        if as_json:
            print(json.dumps({"task_id": job.task_id, "call_id": call_id, "lines": proc.stdout.splitlines()}))
        else:
            print(proc.stdout, end="")
        if not proc.stdout.strip():
            where = f"call {call_id} of task {job.task_id}"
            if job.state == J.PENDING and call_id == job.call_id:  # its logs may still come
                say(f"[yellow]no logs yet for {escape(where)}[/] (it may not have printed anything yet)")
                return
            fail(
                f"no logs found for {where}: it printed nothing, or Modal no longer knows the call (its logs "
                "are gone, or the local emulator's state was wiped)"
            )
        return
    follower = subprocess.Popen(modal_api.logs_command(call_id, since=None, follow=True))
    try:  # follow until the job has finished, then give the last lines a moment to arrive
        ledger = L.Ledger(settings.LEDGER_PATH)
        while follower.poll() is None:
            time.sleep(2)
            try:
                state = asyncio.run(ledger.job(job.row).poll(ledger))
            except modal_api.ApiUnreachable:
                continue
            if state != J.PENDING:  # (a chain that moved on to its next link is still pending)
                time.sleep(3)
                break
    except KeyboardInterrupt:
        pass
    finally:
        follower.terminate()
        follower.wait()


@app.command()
def cancel(
    task_ids: Annotated[list[str] | None, typer.Argument(help="Tasks to cancel (default: all pending).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel pending jobs; they stop on Modal and are marked cancelled."""
    ledger = _ledger(as_json, "[]")
    try:
        cancelled = asyncio.run(J.cancel(ledger, set(task_ids or [])))
    except modal_api.ApiUnreachable as exc:
        fail(f"{exc}; jobs not cancelled stay pending ({make('status')} shows which)", code=UNREACHABLE_EXIT)
    if as_json:
        print(json.dumps([j.task_id for j in cancelled]))
    elif not cancelled:
        console.print(f"no {'such ' if task_ids else ''}job was pending: nothing cancelled")
    else:
        console.print(f"cancelled {len(cancelled)} job(s): {view.some([j.task_id for j in cancelled])}")


# ----------------------------------------------------------------- checking
@app.command(name="guard")
def guard_() -> None:
    """The local code hash next to the deployed one (exit 1 when no deployed version runs your code)."""
    local = guard.code_hash()
    try:
        deployments = modal_api.History().result()
    except modal_api.ApiUnreachable as exc:
        fail(str(exc), code=2)
    newest = deployments[0] if deployments else None
    print(f"local    {local}\ndeployed {newest.tag or '(untagged)' if newest else '(not deployed)'}")
    try:
        deployment = guard.pin(local, deployments)
    except guard.StaleDeploymentError as exc:
        print(f"STALE: {exc}")
        raise typer.Exit(1) from None
    print(f"up to date (version {deployment.version})")


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check everything a spawn needs; each problem comes with its fix."""
    checks = asyncio.run(_diagnose())
    if as_json:
        print(json.dumps([dict(zip(("check", "status", "detail", "fix"), c, strict=True)) for c in checks], indent=2))
    else:
        marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}
        for name, state, detail, fix in checks:
            console.print(
                f"{marks[state]:>18}  {name}: {escape(detail)}" + (f"\n{'':8}fix: {escape(fix)}" if fix else ""),
                soft_wrap=True,
                highlight=False,
            )
    if any(state == "fail" for _, state, _, _ in checks):
        raise typer.Exit(1)


async def _diagnose() -> list[tuple[str, str, str, str]]:
    checks: list[tuple[str, str, str, str]] = []
    if settings.LOCAL:
        server = os.environ.get("MODAL_SERVER_URL", "?")
        checks.append(("credentials", "ok", f"the local emulator at {server} (placeholder token)", ""))
    elif modal_api.has_token():
        checks.append(("credentials", "ok", "a Modal token is configured", ""))
    else:
        checks.append(("credentials", "fail", "no Modal token", "run `modal setup`, or `make local-up` and LOCAL=1"))
    history = modal_api.History()
    local = guard.code_hash()
    try:
        deployments = history.result()
    except modal_api.ApiUnreachable as exc:
        fix = "`make local-up`, then the same command with LOCAL=1" if settings.LOCAL else "check the network"
        checks.append((f"{settings.WHERE} API", "fail", str(exc), fix))
    else:
        if not deployments:
            checks.append(("deployment", "fail", f"app {settings.APP_NAME} is not deployed", make("deploy")))
        else:
            newest = deployments[0]
            detail = f"{settings.APP_NAME}.{settings.FUNCTION_NAME} is deployed (version {newest.version})"
            checks.append(("deployment", "ok", detail, ""))
            if newest.tag == local:
                checks.append(("code hash", "ok", f"deployed code is your code ({local})", ""))
            else:
                deployed = newest.tag or "untagged"
                checks.append(("code hash", "fail", f"deployed {deployed}, local {local}", make("deploy")))
    unshipped = guard.unshipped_files()
    if unshipped:
        names = ", ".join(os.path.relpath(p, settings.PROJECT_ROOT) for p in unshipped)
        fix = "add them to the image in modal_app.py (Image.add_local_file / add_local_dir), or move them out"
        checks.append(("shipped files", "warn", f"not shipped to Modal: {names}", fix))
    try:
        jobs = L.Ledger(settings.LEDGER_PATH).jobs()
    except Exception as exc:  # noqa: BLE001 - any damage to the file is reported, not raised
        detail = f"{settings.LEDGER_PATH}: {modal_api.describe(exc)}"
        checks.append(("ledger", "fail", detail, "restore it from a backup"))
    else:
        unknown = [j.task_id for j in jobs if j.state == J.UNKNOWN]
        checks.append(("ledger", "ok", f"{len(jobs)} task(s): {view.counts(jobs) or 'empty'}", ""))
        if unknown:
            fix = f"{make('spawn', '--respawn-unknown')} (they may then run twice)"
            checks.append(("unknown spawns", "warn", f"{len(unknown)} task(s) may run without a recorded id", fix))
    return checks


def _unwrapped(doc: str) -> str:
    """A docstring as help text: each paragraph on one line, wrapped to the terminal, not to the source."""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in inspect.cleandoc(doc).split("\n\n"))


for _command in app.registered_commands:
    _command.help = _command.help or _unwrapped(_command.callback.__doc__ or "")


def main() -> None:
    """``python -m PACKAGE``: one line, not a traceback, for a ledger that cannot be used."""
    try:
        app()
    except L.LedgerError as exc:  # locked by another process for too long, or not readable/writable
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise SystemExit(1) from None
