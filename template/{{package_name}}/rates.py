"""Modal's per-second prices, for the worst-case cost printed before spawning (see cost.py).

Taken on 2026-11-23. modal.com/pricing was not reachable from where this table was written,
so the figures are Modal's published base rates as quoted by pages that cite it:

- T4, L4, L40S, A100-80GB, H100: techbytes.app, "Serverless GPU Pricing Matrix" (prices
  verified 2026-05-07 from modal.com/pricing), given there per hour and per second.
- B200: blaxel.ai, "Modal pricing alternatives guide" ($6.25/h).
- CPU: beam.cloud, "Modal Pricing Explained" (verified 2026-06-27): $0.0000131 per physical core-second.
- A10, A100-40GB, H200: ESTIMATES (not found in those sources; Modal's earlier published rates).

Base rates only: Modal charges more for a chosen region and for non-preemptible containers, and
adds the CPU and memory a GPU container uses. Check modal.com/pricing and update this table (and
its date) when it matters; the estimate is a ceiling to catch mistakes, not an invoice.
"""

from __future__ import annotations

TAKEN = "2026-11-23"

# USD per GPU-second, by the GPU names of copier.yml / modal's `gpu=` argument.
GPU_USD_PER_S: dict[str, float] = {
    "T4": 0.000164,
    "L4": 0.000222,
    "A10": 0.000306,  # estimate
    "L40S": 0.000542,
    "A100-40GB": 0.000583,  # estimate
    "A100-80GB": 0.000694,
    "H100": 0.001097,
    "H200": 0.001261,  # estimate
    "B200": 0.001736,
}
ESTIMATED = frozenset({"A10", "A100-40GB", "H200"})

# USD per physical core-second; a CPU-only job is costed at CPU_CORES cores.
CPU_USD_PER_CORE_S = 0.0000131
CPU_CORES = 1.0
