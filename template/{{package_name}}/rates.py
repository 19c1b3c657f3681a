"""The GPUs a project may ask for: Modal's per-second prices, for the worst-case cost printed before
spawning (see cost.py), and each GPU's peak bf16 throughput, for the model FLOPs utilisation (MFU)
that the pytorch example reports (see hardware.py). One list, ``GPUS``; the two dates below say when
each kind of figure was taken.

Prices:

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

Peak throughput: dense bf16 tensor-core TFLOP/s (without 2:4 sparsity, which training does not
use) from NVIDIA's datasheets, written down on 2026-12-04 without network access, so from the
datasheets as published rather than re-read that day; L40S checked against a copy of its datasheet
(362.05). H100 and H200 are the SXM parts (Modal's); a PCIe or NVL H100 peaks lower and is not
matched. T4 has no bf16 tensor cores (the example trains in fp32 there), so it has no figure and
its MFU is left blank. A result's MFU is the share of this peak its measured model FLOPs reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TAKEN = "2026-11-23"  # the prices
PEAKS_TAKEN = "2026-12-04"  # the peak throughputs


@dataclass(frozen=True)
class Gpu:
    usd_per_s: float  # Modal's base price per GPU-second
    bf16_tflops: float | None  # dense bf16 peak; None: no bf16 tensor cores
    device_name: str  # a regular expression for torch.cuda.get_device_name() of this GPU
    price_estimated: bool = False  # the price is an estimate (see above)


# By the GPU names of copier.yml / modal's `gpu=` argument.
GPUS: dict[str, Gpu] = {
    "T4": Gpu(0.000164, None, r"\bT4\b"),
    "L4": Gpu(0.000222, 121.0, r"\bL4\b"),
    "A10": Gpu(0.000306, 125.0, r"\bA10\b(?!0)", price_estimated=True),
    "L40S": Gpu(0.000542, 362.05, r"\bL40S\b"),
    "A100-40GB": Gpu(0.000583, 312.0, r"\bA100\b(?!.*80GB)", price_estimated=True),
    "A100-80GB": Gpu(0.000694, 312.0, r"\bA100\b.*80GB"),
    "H100": Gpu(0.001097, 989.4, r"\bH100\b(?!.*(PCIe|NVL))"),
    "H200": Gpu(0.001261, 989.4, r"\bH200\b(?!.*NVL)", price_estimated=True),
    "B200": Gpu(0.001736, 2250.0, r"\bB200\b"),
}
GPU_USD_PER_S = {name: gpu.usd_per_s for name, gpu in GPUS.items()}
ESTIMATED = frozenset(name for name, gpu in GPUS.items() if gpu.price_estimated)

# USD per physical core-second; a CPU-only job is costed at CPU_CORES cores.
CPU_USD_PER_CORE_S = 0.0000131
CPU_CORES = 1.0


# Modal's rate keys (``Workspace.billing.rates()``, USD per second) of our GPU names and of a CPU
# core-second: the one place that maps them (cost.py). A GPU whose key the live rates lack is priced
# from the table above, and every figure says so. Modal does not document its keys; these are the
# keys the local emulator serves (``serve --billing-rates``): check them against `modal billing rates`.
LIVE_KEYS: dict[str, str] = {name: f"gpu.{name}" for name in GPUS}
CPU_LIVE_KEY = "cpu"


def gpu_of_device(device_name: str) -> str | None:
    """The ``GPUS`` name of a CUDA device as torch names it ("NVIDIA H200" -> "H200"), or None."""
    matches = [name for name, gpu in GPUS.items() if re.search(gpu.device_name, device_name)]
    return matches[0] if len(matches) == 1 else None
