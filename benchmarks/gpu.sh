#!/usr/bin/env bash
# The prepared accelerator run (see benchmarks/gpu.py): about 5 minutes on one modern GPU.
# Writes benchmarks/gpu-results/gpu.json and gpu.md. Extra arguments go to gpu.py (e.g. --device cuda:1).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python benchmarks/gpu.py --device cuda "$@"
