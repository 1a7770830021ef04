"""The CUDA path against the CPU: same rows within a tolerance, and the same run twice alike.

Skipped without a GPU (CI has none). On a GPU: `pytest tests/test_cuda.py`.
"""
import math

import pytest
import torch
from test_train import MIXED, jobs_for, lenet, same

import ticketlib.engine.train as engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TOLERANCE = {"accuracy": 0.01, "loss": 0.02}  # 60 iterations on another device: within 1 point and 2%


def assert_within_tolerance(cpu: engine.Outcome, gpu: engine.Outcome) -> None:
    assert [r["iteration"] for r in gpu.rows] == [r["iteration"] for r in cpu.rows]
    assert gpu.diverged == cpu.diverged
    for a, b in zip(cpu.rows, gpu.rows):
        for column, value in a.items():
            if column == "iteration" or math.isnan(value):
                continue
            if "loss" in column:
                assert b[column] == pytest.approx(value, rel=TOLERANCE["loss"]), column
            else:
                assert b[column] == pytest.approx(value, abs=TOLERANCE["accuracy"]), column
    for name, value in cpu.weights.items():
        assert torch.equal(gpu.weights[name] == 0, value == 0), name  # pruned entries stay exactly zero
        torch.testing.assert_close(gpu.weights[name], value, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("rounds", [0, 12], ids=["dense", "sparse"])
def test_cuda_trains_as_the_cpu_does(small_config, small_data, rounds):
    model = lenet()
    jobs = jobs_for(model, MIXED, rounds)
    config = small_config()
    cpu = engine.train(model, jobs, small_data, config, 0, 60)
    gpu = engine.train(model, jobs, small_data.to("cuda"), config, 0, 60, "cuda")
    for a, b in zip(cpu, gpu):
        assert_within_tolerance(a, b)


@pytest.mark.parametrize("rounds", [0, 12], ids=["dense", "sparse"])
def test_cuda_repeats_a_run_bit_for_bit(small_config, small_data, rounds):
    model = lenet()
    jobs = jobs_for(model, MIXED, rounds)
    data, config = small_data.to("cuda"), small_config()
    first, again = (engine.train(model, jobs, data, config, 0, 60, "cuda") for _ in range(2))
    assert all(same(a, b) for a, b in zip(first, again))
