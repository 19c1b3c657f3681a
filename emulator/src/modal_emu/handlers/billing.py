"""Workspace billing: rates given on the command line (``serve --billing-rates FILE.json``), and a
report of the emulator's own run times at those rates.

Rates are USD per second, keyed like Modal's: ``gpu.<TYPE>`` (per GPU, e.g. ``gpu.H100``) for a function
with a GPU, ``cpu`` for one without. A function whose key has no rate costs nothing in the report: the
emulator never invents a figure. Without rates both RPCs answer PERMISSION_DENIED (the client raises
``modal.exception.PermissionDeniedError``), as for a workspace whose plan has no billing API.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from ..rpc import invalid, rpc
from ..store import now

RESOLUTIONS = {"h": 3600, "d": 86400}


def load_rates(path: str) -> dict[str, str]:
    """The rates of ``path``: a JSON object of rate key -> USD per second (a number or a decimal string).
    Raises ValueError with one line naming the file and the bad entry."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--billing-rates {path}: cannot read a JSON object: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"--billing-rates {path}: expected a JSON object of rate key -> USD per second")
    rates = {}
    for key, value in data.items():
        try:
            rate = Decimal(str(value))
        except ArithmeticError:
            rate = Decimal(-1)
        if isinstance(value, bool) or not rate.is_finite() or rate < 0:
            raise ValueError(f"--billing-rates {path}: rate {key!r} is {value!r}, not a USD amount >= 0")
        rates[str(key)] = str(rate)
    return rates


def _rates(emu) -> dict[str, str]:
    if not emu.config.billing_rates:
        raise GRPCError(
            Status.PERMISSION_DENIED,
            "billing is not available in this workspace (start the emulator with --billing-rates FILE.json)",
        )
    return emu.config.billing_rates


def rate_key(gpu: str) -> tuple[str, int]:
    """The rate key of a function's GPU setting ("H100", "A10G:2", "" for none) and how many units it bills."""
    if not gpu:
        return "cpu", 1
    kind, _, count = gpu.partition(":")
    return f"gpu.{kind}", int(count or 1)


@rpc
async def WorkspaceNameLookup(emu, request: empty_pb2.Empty) -> api_pb2.WorkspaceNameLookupResponse:
    return api_pb2.WorkspaceNameLookupResponse(workspace_name="local", username="local")


@rpc
async def WorkspaceBillingRates(
    emu, request: api_pb2.WorkspaceBillingRatesRequest
) -> api_pb2.WorkspaceBillingRatesResponse:
    rates = _rates(emu)
    formatted = "\n".join(f"{key}: ${value}/s" for key, value in sorted(rates.items()))
    return api_pb2.WorkspaceBillingRatesResponse(rates=rates, formatted=formatted)


def _runs(emu, apps: set[str] | None):
    """(app id, rate key, units, start, end) of every input that ran: from its first start to its end
    (now while it runs), so retries and the waits between them count, as a container held would."""
    for call in emu.store["calls"].values():
        fn = emu.store["functions"].get(call["function_id"], {})
        app_id = fn.get("app_id", "")
        if not app_id or (apps is not None and app_id not in apps):
            continue
        key, units = rate_key(fn.get("gpu", ""))
        for item in call["inputs"].values():
            if item.get("started_at"):
                yield app_id, key, units, item["started_at"], item.get("finished_at") or now()


@rpc
async def WorkspaceBillingReport(emu, request: api_pb2.WorkspaceBillingReportRequest):
    rates = _rates(emu)
    step = RESOLUTIONS.get(request.resolution)
    if step is None:
        raise invalid(f"resolution {request.resolution!r}: use 'h' (hourly) or 'd' (daily)")
    start = request.start_timestamp.seconds // step * step  # rounded down to its interval
    end = request.end_timestamp.seconds  # partial last intervals are left out
    apps = set(request.app_ids) or None
    seconds: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for app_id, key, units, began, ended in _runs(emu, apps):
        at = max(start, int(began) // step * step)
        while at + step <= end and at < ended:
            overlap = min(ended, at + step) - max(began, at)
            if overlap > 0:
                seconds[(app_id, at)][key] += overlap * units
            at += step
    wanted = set(request.tag_names)
    for (app_id, at), by_key in sorted(seconds.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        app = emu.store["apps"].get(app_id, {})
        costs = {key: Decimal(str(s)) * Decimal(rates[key]) for key, s in by_key.items() if key in rates}
        tags = {k: v for k, v in app.get("tags", {}).items() if "*" in wanted or k in wanted}
        item = api_pb2.WorkspaceBillingReportItem(
            object_id=app_id,
            description=app.get("name") or app.get("description", ""),
            environment_name=app.get("environment", emu.config.environment),
            cost=str(sum(costs.values(), Decimal(0))),
            cost_by_resource={key: str(cost) for key, cost in costs.items()},
            tags=tags,
        )
        item.interval.FromSeconds(at)
        yield item
