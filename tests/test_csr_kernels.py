"""The compiled CSR products give torch's CPU kernels' bits, alone and in the engine."""
import json
import shutil

import pytest
import torch
from test_train import MIXED, jobs_for, one_thread  # noqa: F401 (one_thread: autouse, as the grid trains)

import ticketlib.engine.train as engine
from ticketlib.engine import csr_kernels
from ticketlib.engine.sparse import BlockSparse
from ticketlib.nets.models import build_model
from ticketlib.seeds import generator

needs_kernels = pytest.mark.skipif(csr_kernels.library() is None and shutil.which("cc") is None,
                                   reason="no C compiler: the CSR kernels cannot be built here")


def cpu_flags() -> set:
    try:
        return set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return set()


def test_kernels_are_built_at_install_wherever_a_compiler_is():
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    assert csr_kernels.library() is not None, "ticketlib/_csr_kernels*.so missing: reinstall (pip install -e .)"
    flags = cpu_flags()
    best = "AVX-512" if {"avx512f", "avx512vl"} <= flags else "AVX2" if "avx2" in flags else "plain C"
    assert csr_kernels.isa() == best  # the widest build the CPU runs


@pytest.fixture(params=csr_kernels.builds() or ["none built"])
def each_isa(request):
    """Every build of the kernels this CPU runs, in turn (then the widest again)."""
    lib = csr_kernels.library()
    assert lib is not None, "the CSR kernels were not built"
    assert lib.csr_use_isa(csr_kernels.ISAS.index(request.param)) == csr_kernels.ISAS.index(request.param)
    yield request.param
    lib.csr_use_isa(lib.csr_best_isa())


def csr(mask: torch.Tensor, gen) -> tuple:
    rows, cols = mask.nonzero(as_tuple=True)
    crow = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(rows, minlength=mask.shape[0]).cumsum(0)])
    return crow.int(), cols.int(), torch.randn(len(rows), generator=gen)


@needs_kernels
@pytest.mark.parametrize("batch", [1, 8, 13, 31, 33, 60, 64, 100, 256])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.3])
def test_compiled_products_give_torchs_bits(batch, density, each_isa):
    gen = generator(f"csr-kernels-{batch}-{density}")
    mask = torch.rand(480, 200, generator=gen) < density
    mask[::7] = False  # empty rows too
    crow, col, values = csr(mask, gen)
    matrix = torch.sparse_csr_tensor(crow, col, values, mask.shape, check_invariants=False)
    x, bias = torch.randn(200, batch, generator=gen), torch.randn(480, 1, generator=gen)
    grad = torch.randn(480, batch, generator=gen)
    assert torch.equal(csr_kernels.matmul(crow, col, values, x, bias), torch.addmm(bias.expand(-1, batch), matrix, x))
    assert torch.equal(csr_kernels.matmul(crow, col, values, x), torch.sparse.mm(matrix, x))
    if batch in csr_kernels.SAMPLED_BATCH:
        expected = torch.sparse.sampled_addmm(matrix, grad, x.t(), beta=0).values()
        assert torch.equal(csr_kernels.sampled(crow, col, grad, x), expected)


@needs_kernels
def test_block_sparse_layer_gives_the_same_bits_either_way(monkeypatch):
    gen = generator("block-sparse-kernels")
    mask = torch.rand(3, 40, 30, generator=gen) < 0.2
    pattern = BlockSparse(mask, groups=torch.tensor([0, 1, 0]))
    values = torch.randn(int(mask.sum()), generator=gen)
    bias, x, grad = torch.randn(3, 40, generator=gen), torch.randn(2, 30, 60, generator=gen), torch.randn(3, 40, 60, generator=gen)

    def run():
        leaves = [t.clone().requires_grad_() for t in (values, bias, x)]
        out = pattern(*leaves)
        out.backward(grad)
        return [out.detach(), *(leaf.grad for leaf in leaves)]

    compiled = run()
    monkeypatch.setattr(csr_kernels, "library", lambda: None)
    with_torch = run()
    assert all(torch.equal(a, b) for a, b in zip(compiled, with_torch))


@needs_kernels
def test_sparse_stack_trains_to_the_same_bits_either_way(small_config, small_data, monkeypatch):
    model = build_model("lenet_300_100", (40,), 10, [32, 16])
    jobs = jobs_for(model, MIXED, rounds=12)
    assert engine.sparse_layers(model, jobs[0].mask)
    compiled = engine.train(model, jobs, small_data, small_config(), 0, 60)
    monkeypatch.setattr(csr_kernels, "library", lambda: None)
    with_torch = engine.train(model, jobs, small_data, small_config(), 0, 60)
    for a, b in zip(compiled, with_torch):
        assert json.dumps(a.rows) == json.dumps(b.rows)
        assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_kernels_not_built_leave_torchs_with_one_warning(monkeypatch):
    monkeypatch.setattr(csr_kernels, "built", lambda: None)
    csr_kernels.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="same numbers.*not built when ticketlib was installed"):
            assert csr_kernels.library() is None
        assert not csr_kernels.usable(torch.zeros(2)) and csr_kernels.isa() == "torch's"
    finally:
        monkeypatch.undo()
        csr_kernels.library.cache_clear()


@needs_kernels
def test_wrappers_refuse_what_the_c_code_would_read_past():
    gen = generator("csr-preconditions")
    mask = torch.rand(20, 10, generator=gen) < 0.5
    crow, col, values = csr(mask, gen)
    x, grad = torch.randn(10, 7), torch.randn(20, 7)
    with pytest.raises(AssertionError):
        csr_kernels.sampled(crow, col, grad, x)  # 7 columns: the eight-lane sum would read past each row
    with pytest.raises(AssertionError):
        csr_kernels.matmul(crow, col, values, torch.randn(10, 8).t())  # not contiguous
    with pytest.raises(AssertionError):
        csr_kernels.matmul(crow, col, values[:-1], torch.randn(10, 8))  # fewer values than entries
    with pytest.raises(AssertionError):
        csr_kernels.check_pattern(crow, col, 5)  # columns past a 5-column operand
    csr_kernels.check_pattern(crow, col, 10)
