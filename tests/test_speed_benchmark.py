"""benchmarks/speed.py: the fp32 floor counts the multiply-adds of kept weights a grid needs."""
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from speed import floor_seconds  # noqa: E402

from ticketlib.imp.grid import expand_grid  # noqa: E402


def test_floor_counts_training_validation_and_two_test_passes_of_kept_weights():
    config = expand_grid(["mnist1d"], ["lenet_300_100"], ["xavier_normal"], [0], iterations=100, num_samples=1000)[0]
    data = SimpleNamespace(input_shape=(40,), num_classes=10, y_val=torch.zeros(500), y_test=torch.zeros(1000))

    def flops(macs, first):  # 100 steps of 60 examples; validation at iterations 0 and 100; test twice
        return 2 * 60 * (3 * macs - first) * 100 + 2 * macs * (2 * 500 + 2 * 1000)

    dense = flops(40 * 300 + 300 * 100 + 100 * 10, 40 * 300)
    pruned = flops(9600 + 24000 + 900, 9600)  # frankle2019: fc layers keep 80%, the output layer 90%
    assert floor_seconds(data, config, 1, 100, 2, 1, 1.0) == 2 * dense / 1e9
    assert floor_seconds(data, config, 2, 100, 3, 2, 4.0) == 3 * (dense + pruned) / 8e9
