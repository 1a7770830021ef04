"""The block-sparse layers' CSR products compiled for the CPU (csr_kernels.c): the same bits as
torch's CPU kernels, in about half their time.

The C source is built once, when the package is installed (setup.py), into the extension
`ticketlib/_csr_kernels*.so`, and loaded from there with ctypes; it picks its AVX-512, AVX2 or plain C
build at run time by what the CPU has. Where the build failed at install (no C compiler), or with
TICKETLIB_NATIVE=0, sparse.py uses torch's kernels: the numbers are the same either way, only the
time differs, and one warning says so.
"""
import ctypes
import importlib.machinery
import os
import warnings
from functools import cache
from pathlib import Path

import torch

SAMPLED_BATCH = range(8, 65)  # csr_sampled holds a row of up to 64 gradients in registers and sums in eight lanes
ISAS = ("plain C", "AVX2", "AVX-512")  # csr_isa()'s answers


def built() -> Path | None:
    """The extension built at install, if any."""
    here = Path(__file__).parent
    return next((p for suffix in importlib.machinery.EXTENSION_SUFFIXES
                 if (p := here / f"_csr_kernels{suffix}").is_file()), None)


@cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels; None where they were not built or are switched off (torch's are used)."""
    if os.environ.get("TICKETLIB_NATIVE", "1") == "0":
        return None
    path = built()
    if path is None:
        warnings.warn("ticketlib: sparse layers use torch's CSR kernels (same numbers, about twice the time): "
                      "the compiled ones were not built when ticketlib was installed (no C compiler?); "
                      "install one (e.g. apt-get install gcc) and reinstall ticketlib")
        return None
    lib = ctypes.CDLL(str(path))
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    lib.csr_matmul.argtypes = [size, pointer, pointer, pointer, pointer, size, pointer, pointer]
    lib.csr_sampled.argtypes = [size, pointer, pointer, pointer, pointer, size, pointer]
    lib.csr_use_isa.argtypes = [ctypes.c_int]
    lib.csr_matmul.restype = lib.csr_sampled.restype = None
    return lib


def isa() -> str:
    """Which kernels the sparse layers run: a build of the compiled ones, or torch's."""
    lib = library()
    return ISAS[lib.csr_isa()] if lib is not None else "torch's"


def builds() -> tuple[str, ...]:
    """Every build of the compiled kernels this CPU runs (each gives the same bits), narrowest first."""
    lib = library()
    return ISAS[:lib.csr_best_isa() + 1] if lib is not None else ()


def usable(*tensors: torch.Tensor) -> bool:
    return library() is not None and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.int32)
                                         and t.is_contiguous() for t in tensors)


def check_pattern(crow: torch.Tensor, col: torch.Tensor, columns: int) -> None:
    """A CSR pattern the C code may walk: int32 arrays, rows in order, columns inside the operand.
    O(entries): checked once where a pattern is made (sparse.BlockSparse), not at every product."""
    assert crow.dtype == col.dtype == torch.int32 and crow.dim() == col.dim() == 1
    assert int(crow[0]) == 0 and int(crow[-1]) == col.numel() and bool((crow[1:] >= crow[:-1]).all())
    assert col.numel() == 0 or (0 <= int(col.min()) and int(col.max()) < columns)


def check_operands(crow: torch.Tensor, col: torch.Tensor, entries: int, columns: int, batch: int) -> None:
    """The per-call preconditions: O(1), so every product checks them."""
    assert crow.dtype == col.dtype == torch.int32 and col.numel() == entries and batch >= 0 and columns >= 0


def matmul(crow, col, values, x, bias=None, out=None) -> torch.Tensor:
    """CSR (crow, col, values) @ x (+ bias, one per row) into `out` (rows × B, contiguous):
    torch.addmm's numbers, for tensors that are `usable` and a pattern that passed check_pattern."""
    rows, batch = crow.numel() - 1, x.shape[1]
    check_operands(crow, col, values.numel(), x.shape[0], batch)
    assert x.dim() == 2 and x.dtype == values.dtype == torch.float32 and x.is_contiguous() and values.is_contiguous()
    assert bias is None or (bias.numel() == rows and bias.dtype == torch.float32 and bias.is_contiguous())
    out = x.new_empty(rows, batch) if out is None else out
    assert out.shape == (rows, batch) and out.dtype == torch.float32 and out.is_contiguous()
    library().csr_matmul(rows, crow.data_ptr(), col.data_ptr(), values.data_ptr(), x.data_ptr(), batch,
                         None if bias is None else bias.data_ptr(), out.data_ptr())
    return out


def sampled(crow, col, grad, x) -> torch.Tensor:
    """grad @ x.T at the CSR pattern's entries (torch.sparse.sampled_addmm with beta=0's values),
    for grad rows × B and x columns × B, B in SAMPLED_BATCH."""
    rows, batch = grad.shape
    check_operands(crow, col, col.numel(), x.shape[0], batch)
    assert crow.numel() == rows + 1 and x.shape[1] == batch and batch in SAMPLED_BATCH
    assert grad.dtype == x.dtype == torch.float32 and grad.is_contiguous() and x.is_contiguous()
    values = grad.new_empty(col.numel())
    library().csr_sampled(rows, crow.data_ptr(), col.data_ptr(), grad.data_ptr(), x.data_ptr(), batch,
                          values.data_ptr())
    return values
