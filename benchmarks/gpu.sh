#!/usr/bin/env bash
# The GPU checks in one short run (README, "On a GPU"): CUDA against the CPU (tests/test_cuda.py),
# grid M timed on the device, and its rows against the shipped CPU rows (benchmarks/devices.py).
#
#   bash benchmarks/gpu.sh OUT            # OUT gets grid_m/ (its exported results) and the log
#
# Needs torch with CUDA and MNIST under data/datasets/ (`make data` on a machine with a registry).
# GRID, REFERENCE and DEVICE override the grid, the shipped grid it is compared with, and the device.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT}
grid=${GRID:-grid_m} reference=${REFERENCE:-mnist_main} device=${DEVICE:-cuda}
python=${PYTHON:-python3}
store=$(mktemp -d)
mkdir -p "$out"
cd "$(dirname "$0")/.."
{
  "$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
  "$python" -m pytest tests/test_cuda.py -q -p no:cacheprovider
  start=$(date +%s)
  "$python" -m ticketlib run --config "configs/$grid.yaml" --store "$store" --device "$device" 2>&1 | tr '\r' '\n' | grep -v '^ *$' | tail -3
  echo "$grid on $device: $(( $(date +%s) - start )) s"
  "$python" -m ticketlib export "$grid" --store "$store" --out "$out" &&
    "$python" benchmarks/devices.py "results/$reference/table.parquet" "$out/$grid/table.parquet"
} 2>&1 | tee "$out/gpu.log"
rm -rf "$store"
