"""The block-sparse layers' CSR products compiled for this CPU (csr_kernels.c): the same bits as
torch's CPU kernels (built, it seems, for the baseline x86 ISA) in about half their time.

The C source is built once per machine with the system's C compiler (`cc`, or $CC) into
~/.cache/ticketlib ($XDG_CACHE_HOME), named by a hash of the source, flags and CPU, and loaded
with ctypes. Where it cannot be built (no compiler, no AVX-512) or TICKETLIB_NATIVE=0, sparse.py
keeps torch's kernels: the numbers are the same either way, only the time differs.
"""
import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from functools import cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csr_kernels.c")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fPIC", "-shared"]  # no fused multiply-adds: torch rounds twice
SAMPLED_BATCH = range(8, 65)  # csr_sampled holds a row of up to 64 gradients in registers and sums in eight lanes


def cpu_signature() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return next((line for line in info.splitlines() if line.startswith("flags")), "")


@cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where they cannot be (then torch's are used)."""
    if os.environ.get("TICKETLIB_NATIVE", "1") == "0" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    compiler = os.environ.get("CC", "cc")
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *FLAGS, cpu_signature()]).encode()).hexdigest()[:16]
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ticketlib"
    target = cache_dir / f"csr_kernels-{key}.so"
    if not target.exists():
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:  # built aside, then renamed: workers may race
                built = Path(tmp) / target.name
                subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built)], check=True,
                               capture_output=True, text=True)
                os.replace(built, target)
        except (OSError, subprocess.CalledProcessError) as error:
            reason = (getattr(error, "stderr", "") or str(error)).strip().splitlines()[-1]
            warnings.warn(f"ticketlib: sparse layers use torch's CSR kernels (same numbers, about twice the time); "
                          f"compiling {SOURCE.name} failed: {reason}")
            return None
    lib = ctypes.CDLL(str(target))
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    lib.csr_matmul.argtypes = [size, pointer, pointer, pointer, pointer, size, pointer, pointer]
    lib.csr_sampled.argtypes = [size, pointer, pointer, pointer, pointer, size, pointer]
    lib.csr_matmul.restype = lib.csr_sampled.restype = None
    return lib


def usable(*tensors: torch.Tensor) -> bool:
    return library() is not None and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.int32)
                                         and t.is_contiguous() for t in tensors)


def matmul(crow, col, values, x, bias=None, out=None) -> torch.Tensor:
    """CSR (crow, col, values) @ x (+ bias, one per row) into `out` (rows × B, contiguous):
    torch.addmm's numbers, for tensors that are `usable`."""
    rows, batch = crow.numel() - 1, x.shape[1]
    out = x.new_empty(rows, batch) if out is None else out
    library().csr_matmul(rows, crow.data_ptr(), col.data_ptr(), values.data_ptr(), x.data_ptr(), batch,
                         None if bias is None else bias.data_ptr(), out.data_ptr())
    return out


def sampled(crow, col, grad, x) -> torch.Tensor:
    """grad @ x.T at the CSR pattern's entries (torch.sparse.sampled_addmm with beta=0's values),
    for grad rows × B and x columns × B, B in SAMPLED_BATCH."""
    values = grad.new_empty(col.numel())
    library().csr_sampled(grad.shape[0], crow.data_ptr(), col.data_ptr(), grad.data_ptr(), x.data_ptr(),
                          grad.shape[1], values.data_ptr())
    return values
