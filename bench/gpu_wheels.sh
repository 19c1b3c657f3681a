#!/usr/bin/env bash
# Fetch, on a machine with PyPI, the wheels that bench/gpu_check.sh installs on the GPU machine, which has
# no package registry: modal, the emulator's and the generated project's dependencies, and copier to render,
# at the versions of uv.lock, for that machine's Python (3.12, x86-64 Linux). Into .whl/ (git-ignored).
# torch, numpy and pytest are not fetched: the GPU machine's python3 has them (CUDA torch).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-uv}
python_version=${WHEEL_PYTHON:-3.12}
rm -rf .whl && mkdir -p .whl
"$uv" export --quiet --frozen --no-hashes --no-header --only-group dev --no-emit-project \
  | grep -v '^-e ' >.whl/constraints.txt
printf '%s\n' modal==1.6.4 'grpclib>=0.4.7' 'aiohttp>=3.9' 'copier>=9.4,<10' 'pydantic>=2.6' 'typer>=0.12' 'pyyaml>=6' \
  | "$uv" pip compile --quiet - --constraint .whl/constraints.txt --python-version "$python_version" \
    --python-platform x86_64-manylinux_2_28 --no-header --no-annotate -o .whl/requirements.txt
platforms=()
for n in 28 27 24 17 5; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
  "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl -r .whl/requirements.txt \
  2> >(grep -v "^WARNING: Location 'file:" >&2)
echo "gpu_wheels: $(ls .whl/*.whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/ (carry it: see docs/development.md)"
