"""What trained a round: the CPU model and its widest vector ISA, the device, the torch version and
which sparse kernels ran. Float sums depend on all of them, so results are the same bit for bit
only where this record is (its `kind`); verify.py checks bits there, and intervals elsewhere.
"""
import platform
from functools import cache
from pathlib import Path

import torch

from ticketlib.engine import csr_kernels


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def vector_isa() -> str:
    """The widest float vector instructions torch's CPU kernels may use here."""
    capability = torch.backends.cpu.get_cpu_capability()  # e.g. AVX512, AVX2, DEFAULT
    return {"AVX512": "AVX-512", "AVX2": "AVX2"}.get(capability, capability)


@cache
def machine(device: str = "cpu") -> dict:
    record = dict(cpu=cpu_model(), isa=vector_isa(), torch=torch.__version__.split("+")[0], kernels=csr_kernels.isa())
    if torch.device(device).type == "cuda":
        record["device"] = torch.cuda.get_device_name(torch.device(device))
    else:
        record["device"] = "cpu"
    return record


def kind(record: dict) -> tuple:
    """What must match for bit-for-bit equality: the CPU model (BLAS libraries choose kernels by it),
    its vector ISA, the torch version and the device."""
    return record.get("cpu"), record.get("isa"), record.get("torch"), record.get("device")
