"""What tasks cost: the most a batch can cost before it is spawned, and what a sweep has cost as it runs.

- :func:`worst_case`: every attempt of every task runs to its timeout. Printed by `make spawn`
  (cli.check_cost) before it spawns anything; above ``settings.COST_CONFIRM_USD`` it asks first
  (``--yes`` skips the question) and, with no terminal to ask on, refuses.
- :func:`spending`: each task's cost so far, from its jobs' run times, and the worst case of the jobs
  still running; :meth:`Spending.over_budget` is the budget's one test (``settings.BUDGET_USD``).

Every figure is priced by :func:`rate` from :func:`prices`: Modal's live rates (``Workspace.billing.rates()``)
as last fetched by :func:`refresh_prices`, cached with their date in ``settings.RATES_PATH``; without them
(the API unreachable, or no billing answer) from rates.py's dated fallback table. Each figure says which.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from . import modal_api, rates, settings
from .job import OVER_BUDGET, PENDING, Job, after
from .modal_api import QUEUED

if TYPE_CHECKING:
    from .ledger import Ledger


class UnknownRate(ValueError):
    pass


@dataclass(frozen=True)
class WorstCase:
    tasks: int
    attempts: int  # 1 + retries: Modal may run a task that many times
    timeout_s: float
    hardware: str  # what one container is charged for, e.g. "2 x H100"
    usd_per_s: float  # for one container
    estimated: bool = False  # the rate is an estimate (rates.ESTIMATED)

    @property
    def usd(self) -> float:
        return self.tasks * self.attempts * self.timeout_s * self.usd_per_s

    def __str__(self) -> str:
        rate = f"${self.usd_per_s * 3600:.2f}/h" + (" (an estimated rate)" if self.estimated else "")
        return (
            f"worst case ${self.usd:,.2f}: {self.tasks} task(s) x {self.attempts} attempt(s) x "
            f"{_duration(self.timeout_s)} timeout on {self.hardware} at {rate}, {prices().source}"
        )


@dataclass(frozen=True)
class Rate:
    """What one container of the function is charged per second, and on what hardware."""

    usd_per_s: float
    hardware: str  # e.g. "2 x H100"
    estimated: bool = False  # the rate is an estimate (rates.ESTIMATED)


# ------------------------------------------------------------ the rates in use
FALLBACK = f"the dated fallback table of {rates.TAKEN} ({settings.PACKAGE_NAME}/rates.py)"
FALLBACK_SOURCE = f"rates: {FALLBACK}, no live rates fetched"


@dataclass(frozen=True)
class Prices:
    gpu_usd_per_s: dict[str, float]  # by our GPU names (rates.GPUS)
    cpu_usd_per_core_s: float
    estimated: frozenset[str]  # GPUs priced by an estimate of the fallback table
    source: str  # which rates these are, for every figure: "rates: live rates of <date> ..." or the fallback


def _in_use() -> list[str]:
    return [settings.GPU, *settings.GPU_FALLBACKS] if settings.GPU else ["CPU"]


def prices() -> Prices:
    """The live rates cached by :func:`refresh_prices`, each missing one (rates.LIVE_KEYS) from the fallback
    table; without a cache, the fallback table. The source names the fallback for a GPU in use it prices."""
    try:
        cached = json.loads(settings.RATES_PATH.read_text(encoding="utf-8"))
        taken, live = str(cached["taken"]), {str(k): float(v) for k, v in cached["rates"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Prices(dict(rates.GPU_USD_PER_S), rates.CPU_USD_PER_CORE_S, rates.ESTIMATED, FALLBACK_SOURCE)
    gpu = {name: live.get(key, rates.GPU_USD_PER_S[name]) for name, key in rates.LIVE_KEYS.items()}
    cpu = live.get(rates.CPU_LIVE_KEY, rates.CPU_USD_PER_CORE_S)
    missing = [name for name in rates.LIVE_KEYS if rates.LIVE_KEYS[name] not in live]
    missing += [] if rates.CPU_LIVE_KEY in live else ["CPU"]
    estimated = frozenset(name for name in rates.ESTIMATED if name in missing)
    source = f"rates: live rates of {taken} (Modal's billing rates, cached in {settings.RATES_PATH.name})"
    if unpriced := [name for name in _in_use() if name in missing]:
        source += f"; {', '.join(unpriced)} from {FALLBACK} (no live rate)"
    return Prices(gpu, cpu, estimated, source)


async def refresh_prices() -> str | None:
    """Fetch Modal's live rates into ``settings.RATES_PATH`` (written whole or not at all). Returns why
    not when they could not be had (the API unreachable, or no billing answer): figures keep to the
    rates cached before, or to the fallback table, and say so."""
    try:
        live = await modal_api.billing_rates()
    except modal_api.ApiUnreachable as exc:
        return f"live rates not fetched ({exc})"
    if live is None:
        return "live rates not fetched: Modal gives no billing rates to this workspace"
    taken = datetime.now(timezone.utc).date().isoformat()  # noqa: UP017 - the image may run 3.10
    settings.RATES_PATH.parent.mkdir(parents=True, exist_ok=True)
    partial = settings.RATES_PATH.with_suffix(".partial")
    partial.write_text(json.dumps({"taken": taken, "rates": live}, indent=1), encoding="utf-8")
    os.replace(partial, settings.RATES_PATH)
    return None


def rate(
    gpu: str | None = settings.GPU,
    gpu_count: int = settings.GPU_COUNT,
    fallbacks: list[str] = settings.GPU_FALLBACKS,  # noqa: B006 - read only
) -> Rate:
    """The rate of one container; with fallback GPUs, the dearest of them (the one used is not known)."""
    table = prices()
    if gpu is None:
        cores = rates.CPU_CORES
        return Rate(cores * table.cpu_usd_per_core_s, f"{cores:g} CPU core(s)")
    choices = [gpu, *fallbacks]
    unknown = [g for g in choices if g not in table.gpu_usd_per_s]
    if unknown:
        raise UnknownRate(
            f"no price for GPU {unknown[0]!r} in {settings.PACKAGE_NAME}/rates.py (it has "
            f"{', '.join(table.gpu_usd_per_s)}): add it there to get the cost check"
        )
    dearest = max(choices, key=table.gpu_usd_per_s.__getitem__)
    hardware = f"{gpu_count} x {dearest}" + (f" (dearest of {', '.join(choices)})" if len(choices) > 1 else "")
    return Rate(gpu_count * table.gpu_usd_per_s[dearest], hardware, estimated=dearest in table.estimated)


def worst_case(
    tasks: int,
    gpu: str | None = settings.GPU,
    gpu_count: int = settings.GPU_COUNT,
    fallbacks: list[str] = settings.GPU_FALLBACKS,  # noqa: B006 - read only
    timeout_s: float = settings.TIMEOUT_S,
    retries: int = settings.RETRIES,
) -> WorstCase:
    """The worst case of ``tasks`` tasks; with fallback GPUs, each is costed at the dearest of them."""
    one = rate(gpu, gpu_count, fallbacks)
    return WorstCase(tasks, retries + 1, timeout_s, one.hardware, one.usd_per_s, estimated=one.estimated)


# ------------------------------------------------------------ as it runs
def run_time_s(job: Job, now: float) -> float:
    """An upper bound of the time ``job`` has run: from its spawn to when its end was seen (or now).

    Modal's public client says neither when an input started nor when it ended, so the queue time and
    the time until a poll saw the end are counted too. Every attempt (Modal's retries) and every link of
    a chain runs inside that span, one after another, so all of them are counted."""
    end = job.finished_at if job.finished_at is not None else now
    return max(0.0, end - job.spawned_at)


@dataclass
class Spending:
    """What a sweep has cost so far (an upper bound), task by task, and the worst case of what still runs."""

    by_task: dict[str, float]  # every job of the task: earlier attempts (`make retry`) too
    running: int  # pending jobs not known to be queued: each may still run for its worst case
    running_worst_usd: float
    budget_usd: float | None

    @property
    def spent_usd(self) -> float:
        return sum(self.by_task.values())

    def over_budget(self, adding: int = 0) -> bool:
        """Spent + the worst case of what runs (+ ``adding`` tasks more) would pass the budget."""
        if self.budget_usd is None:
            return False
        more = worst_case(adding).usd if adding else 0.0
        return self.spent_usd + self.running_worst_usd + more > self.budget_usd

    def why(self, more: str = "") -> str:
        """Why the budget stops the sweep (``more``: the worst case of tasks to add, in words)."""
        return (
            f"over budget: cost so far ${self.spent_usd:,.2f} + worst case ${self.running_worst_usd:,.2f} of "
            f"{self.running} running job(s){more} would pass JOB_BUDGET_USD = ${self.budget_usd or 0:,.2f}"
        )

    def line(self) -> str:
        budget = "" if self.budget_usd is None else f"; budget ${self.budget_usd:,.2f} (JOB_BUDGET_USD)"
        return (
            f"cost so far ${self.spent_usd:,.2f} (an upper bound: spawn to end, queue time included); "
            f"worst case of the {self.running} running job(s) ${self.running_worst_usd:,.2f}{budget}; {prices().source}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "total_usd": round(self.spent_usd, 6),
            "running": self.running,
            "running_worst_usd": round(self.running_worst_usd, 6),
            "budget_usd": self.budget_usd,
            "over_budget": self.over_budget(),
            "rates": prices().source,
        }


def spending(
    every_job: list[Job], phases: dict[str, str] | None = None, now: float | None = None, one: Rate | None = None
) -> Spending:
    """The spending of the jobs of the ledger (all of them, ``latest_only=False``). A pending job is
    running unless ``phases`` says it is queued; a running job may still cost the worst case of one task."""
    now = time.time() if now is None else now
    usd_per_s = (one or rate()).usd_per_s
    by_task: dict[str, float] = {}
    for job in every_job:
        by_task[job.task_id] = by_task.get(job.task_id, 0.0) + run_time_s(job, now) * usd_per_s
    phases = phases or {}
    running = sum(j.state == PENDING and phases.get(j.call_id or "") != QUEUED for j in every_job)
    return Spending(by_task, running, worst_case(running).usd if running else 0.0, settings.BUDGET_USD)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:g} s"


async def stop_queued(ledger: Ledger, phases: dict[str, str]) -> tuple[Spending, list[Job]]:
    """The monitor's part of the budget: when it would be passed, cancel every job Modal reports as
    queued (``phases``, from job.refresh) and record why. Returns the spending and the jobs cancelled.
    Raises :class:`modal_api.ApiUnreachable` on the first cancel Modal could not be asked for."""
    found = spending(ledger.jobs(latest_only=False), phases)
    if not found.over_budget():
        return found, []
    why = found.why()
    stopped = []
    for job in ledger.jobs(state=PENDING, latest_only=False):
        if job.call_id and phases.get(job.call_id) == QUEUED:
            await modal_api.cancel(job.call_id, f"cancelling {job.task_id} (over budget)")
            ledger.finish(job.call_id, after(PENDING, OVER_BUDGET), error=f"cancelled while queued: {why}")
            stopped.append(job)
    return found, stopped
