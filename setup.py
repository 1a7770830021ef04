"""The compiled CSR kernels (ticketlib/engine/csr_kernels.c), built when the package is installed.

Optional: where no C compiler is found the install goes on, and the engine uses torch's kernels
(the same numbers, slower; ticketlib says so once). No -march flags: the source picks AVX-512,
AVX2 or plain C at run time, so a build runs on any CPU of its architecture."""
from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "ticketlib.engine._csr_kernels", sources=["ticketlib/engine/csr_kernels.c"], optional=True,
    extra_compile_args=["-O3", "-ffp-contract=off"],  # no fused multiply-adds: torch rounds twice
)])
