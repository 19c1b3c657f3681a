"""The most a batch of tasks can cost: every attempt of every task runs to its timeout.

Printed by `make spawn` (cli.check_cost) before it spawns anything; above ``settings.COST_CONFIRM_USD`` it asks
first (``--yes`` skips the question) and, with no terminal to ask on, refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import rates, settings


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
            f"{_duration(self.timeout_s)} timeout on {self.hardware} at {rate}, "
            f"Modal base prices of {rates.TAKEN} ({settings.PACKAGE_NAME}/rates.py)"
        )


def worst_case(
    tasks: int,
    gpu: str | None = settings.GPU,
    gpu_count: int = settings.GPU_COUNT,
    fallbacks: list[str] = settings.GPU_FALLBACKS,  # noqa: B006 - read only
    timeout_s: float = settings.TIMEOUT_S,
    retries: int = settings.RETRIES,
) -> WorstCase:
    """The worst case of ``tasks`` tasks; with fallback GPUs, each is costed at the dearest of them."""
    if gpu is None:
        cores = rates.CPU_CORES
        return WorstCase(tasks, retries + 1, timeout_s, f"{cores:g} CPU core(s)", cores * rates.CPU_USD_PER_CORE_S)
    choices = [gpu, *fallbacks]
    unknown = [g for g in choices if g not in rates.GPU_USD_PER_S]
    if unknown:
        raise UnknownRate(
            f"no price for GPU {unknown[0]!r} in {settings.PACKAGE_NAME}/rates.py (it has "
            f"{', '.join(rates.GPU_USD_PER_S)}): add it there to get the cost check"
        )
    dearest = max(choices, key=rates.GPU_USD_PER_S.__getitem__)
    hardware = f"{gpu_count} x {dearest}" + (f" (dearest of {', '.join(choices)})" if len(choices) > 1 else "")
    return WorstCase(
        tasks,
        retries + 1,
        timeout_s,
        hardware,
        gpu_count * rates.GPU_USD_PER_S[dearest],
        estimated=dearest in rates.ESTIMATED,
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:g} s"
