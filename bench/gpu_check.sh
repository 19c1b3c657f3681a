#!/usr/bin/env bash
# The pytorch example on a GPU machine, in one call: render a pytorch project from this checkout, then its
# `make gpu-smoke` (the local emulator runs the job on this machine's GPU), the GPU benchmark's base and large
# presets (bench/bench_torch.py) and its `make test`. Made for the device machine, whose python3 has CUDA torch
# and which has no package registry: the other packages come as wheels in .whl/ (bench/gpu_wheels.sh fetches
# them, elsewhere), and the project's Makefile runs with UV=true RUN=env, so that every `uv run` is this Python.
#
#   bench/gpu_check.sh      # PYTHON=python3; WHEELS=.whl; logs and figures under $OUT (or a temporary folder)
#
# On a machine without a CUDA device it still runs the tests (on the CPU); gpu-smoke and the benchmark then
# each say at once that there is no GPU, and the script ends 0 if that is all that went differently.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PYTHON:-python3}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
work=$(mktemp -d)
say() { echo "gpu_check: $*"; }

wheels=${WHEELS-.whl}  # WHEELS= (empty): this Python has the packages already
if [[ -n $wheels ]] && compgen -G "$wheels/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" "$wheels"/*.whl \
    || { say "could not install the wheels of .whl/"; exit 1; }
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}" PATH="$work/site/bin:$PATH"
fi
# The emulator from this checkout. `python`, `pytest` and `modal` are this Python's (the Makefile calls them by
# those names; the device has python3): scripts, not links, so that a venv's Python still finds its packages.
export PYTHONPATH="$repo/emulator/src:$repo:${PYTHONPATH:-}"
mkdir -p "$work/bin"
py_path=$(command -v "$py") || { say "no Python at $py"; exit 1; }
for name in python pytest modal; do
  args=$([[ $name == python ]] || echo "-m $name")
  printf '#!/bin/sh\nexec %s %s "$@"\n' "$py_path" "$args" >"$work/bin/$name" && chmod +x "$work/bin/$name"
done
export PATH="$work/bin:$PATH"
# Without the emulator installed as a distribution, pytest does not find its plugin (the modal_emulator fixture).
python -c "import importlib.metadata as m; m.distribution('modal-emu')" 2>/dev/null \
  || export PYTEST_ADDOPTS="-p modal_emu.pytest_plugin"
export PYTHONUNBUFFERED=1 JOB_COST_CONFIRM_USD=inf
python -c "import torch, modal, copier, modal_emu; print('gpu_check: torch', torch.__version__, '| CUDA:', \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none', '| modal', modal.__version__)" \
  || { say "this Python lacks torch, modal, copier or the emulator (see above)"; exit 1; }
nvidia-smi -L 2>/dev/null && has_gpu=1 || has_gpu=0

project="$work/project"
python -c "import sys; from pathlib import Path; from tests.flow import render
render(Path(sys.argv[1]), project_name='Torch Bench', workload='pytorch', gpu='H200')" "$project" 2>&1 \
  | grep -v DirtyLocalWarning | grep -v '^  warn(' || true
test -f "$project/Makefile" || { say "rendering the project failed"; exit 1; }

failed=()
step() {  # step NAME EXPECTED_RC COMMAND...: run it, log it to $out/NAME.log, compare its exit code
  local name=$1 expected=$2 rc
  shift 2
  say "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.log"
  rc=${PIPESTATUS[0]}
  if [[ $expected == 0 && $rc != 0 ]] || [[ $expected != 0 && $rc == 0 ]]; then
    failed+=("$name (exit $rc)")
  fi
  say "== $name: exit $rc"
}

mk=(make -C "$project" UV=true RUN=env)
# The figures first, the tests last; the time limits add up to 590 s, within one 600 s call of the device tool.
if [[ $has_gpu == 1 ]]; then
  step gpu-smoke 0 timeout 180 "${mk[@]}" gpu-smoke
  "${mk[@]}" local-down >/dev/null 2>&1
  cp "$project"/.jobs/gpu-smoke/results/*.json "$out/" 2>/dev/null
  cp "$project"/.jobs/gpu-smoke/results/summary.csv "$out/gpu-smoke-summary.csv" 2>/dev/null
  step bench 0 timeout 140 python bench/bench_torch.py --project "$project" --presets base,large --json "$out/bench.json"
else
  step gpu-smoke 1 timeout 180 "${mk[@]}" gpu-smoke
  grep -q "this machine has no CUDA device" "$out/gpu-smoke.log" || failed+=("gpu-smoke (no 'no CUDA device' line)")
  step bench 0 timeout 140 python bench/bench_torch.py --project "$project"
  grep -q "no GPU here" "$out/bench.log" || failed+=("bench (no 'no GPU here' line)")
fi
step test 0 timeout 270 "${mk[@]}" test
rm -rf "$work"
if ((${#failed[@]})); then
  say "FAILED: ${failed[*]} (logs in $out)"
  exit 1
fi
say "every step did what it should on this machine ($([[ $has_gpu == 1 ]] && echo 'with a GPU' || echo 'no GPU')); logs in $out"
