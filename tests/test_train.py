"""The stacked engine: a ticket's numbers do not depend on its stack; sparse layers equal dense ones."""
import json
import math

import pytest
import torch

import ticketlib.engine.train as engine
from ticketlib.data.datasets import Data
from ticketlib.engine.adam import Adam, sqrt
from ticketlib.engine.seed_runs import SeedRunsLinear, seed_runs
from ticketlib.engine.sparse import BlockSparse
from ticketlib.nets.inits import initialize
from ticketlib.nets.models import build_model, prunable_tensors
from ticketlib.nets.pruning import full_mask, magnitude_prune, random_prune
from ticketlib.seeds import generator

RATES = {"fc": 0.2, "conv": 0.1, "output": 0.1}


@pytest.fixture(autouse=True)
def one_thread():
    """As the grid trains on CPU: more threads split sums differently for different stack sizes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def lenet():
    return build_model("lenet_300_100", (40,), 10, [32, 16])


def jobs_for(model, inits_seeds, rounds=0, scale=1.0):
    """Jobs with different inits, seeds and masks: magnitude masks after `rounds` prunings."""
    kinds = prunable_tensors(model, False)
    jobs = []
    for init, seed in inits_seeds:
        state = initialize(model, init, scale, "default", seed, "init")
        mask = full_mask({n: state[n] for n in kinds})
        for _ in range(rounds):
            mask = magnitude_prune(state, mask, kinds, RATES, "layerwise")
        jobs.append(engine.Job(state, mask, seed))
    return jobs


def same(a: engine.Outcome, b: engine.Outcome) -> bool:
    return (json.dumps(a.rows) == json.dumps(b.rows) and a.diverged == b.diverged  # json: NaN equals NaN
            and all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights))


MIXED = [("xavier_normal", 0), ("kaiming_uniform", 1), ("orthogonal", 0), ("uniform", 3)]


@pytest.mark.parametrize("order", [MIXED, sorted(MIXED, key=lambda pair: pair[1])], ids=["mixed", "seed-runs"])
@pytest.mark.parametrize("rounds", [0, 12], ids=["dense", "sparse"])
def test_each_ticket_trains_as_it_would_alone(small_config, small_data, rounds, order):
    model = lenet()
    jobs = jobs_for(model, order, rounds)
    assert bool(engine.sparse_layers(model, jobs[0].mask)) == (rounds > 0)
    config = small_config()
    together = engine.train(model, jobs, small_data, config, 0, 60)
    for job, outcome in zip(jobs, together):
        assert same(engine.train(model, [job], small_data, config, 0, 60)[0], outcome)
    assert len(together[0].rows) == 4 and not together[0].diverged  # at 0, 20, 40, 60
    assert together[0].rows != together[1].rows


def test_sparse_layers_compute_what_dense_layers_do(small_config, small_data, monkeypatch):
    model = lenet()
    jobs = jobs_for(model, MIXED[:2], rounds=6)
    config = small_config()
    runs = {}
    for threshold in (0.0, 1.01):  # never sparse, always sparse
        monkeypatch.setattr(engine, "SPARSE_BELOW", threshold)
        runs[threshold] = engine.train(model, jobs, small_data, config, 0, 5)
    for dense, sparse in zip(runs[0.0], runs[1.01]):
        for name, value in dense.weights.items():
            torch.testing.assert_close(sparse.weights[name], value, rtol=1e-4, atol=1e-5)
        assert sparse.rows[-1]["val_loss"] == pytest.approx(dense.rows[-1]["val_loss"], rel=1e-4)


def test_seed_runs_layer_gives_the_batched_products_bits():
    """A dense first layer in runs of tickets sharing a minibatch: output and gradients bit for bit
    those of one product per ticket over its own copy of the data (what keeps the engine's numbers)."""
    gen = generator("seed-runs-test")
    seed_row = torch.tensor([0, 0, 1, 1, 1, 0])  # runs of 2, 3 and 1 tickets
    weights = torch.randn(6, 300, 784, generator=gen) * 0.05
    bias, x = torch.randn(6, 300, generator=gen), torch.rand(2, 784, 60, generator=gen)
    assert seed_runs(seed_row) == [(0, 2, 0), (2, 5, 1), (5, 6, 0)]
    w1, b1 = weights.clone().requires_grad_(), bias.clone().requires_grad_()
    w2, b2 = weights.clone().requires_grad_(), bias.clone().requires_grad_()
    out_runs = SeedRunsLinear.apply(w1, b1, x, seed_runs(seed_row))
    out_batched = torch.baddbmm(b2.unsqueeze(2), w2, x[seed_row])
    assert torch.equal(out_runs, out_batched)
    grad = torch.randn(out_batched.shape, generator=gen)
    out_runs.backward(grad)
    out_batched.backward(grad)
    assert torch.equal(w1.grad, w2.grad) and torch.equal(b1.grad, b2.grad)


def test_block_sparse_matmul_and_gradients_match_dense():
    gen = generator("block-sparse-test")
    mask = torch.rand(3, 7, 5, generator=gen) < 0.4
    weights = torch.randn(3, 7, 5, generator=gen) * mask
    bias, x = torch.randn(3, 7, generator=gen), torch.randn(3, 5, 4, generator=gen)
    pattern = BlockSparse(mask)
    assert torch.equal(pattern.scatter(pattern.gather(weights)), weights)
    values = pattern.gather(weights).requires_grad_()
    b1, x1 = bias.clone().requires_grad_(), x.clone().requires_grad_()
    w2, b2, x2 = weights.clone().requires_grad_(), bias.clone().requires_grad_(), x.clone().requires_grad_()
    out_sparse = pattern(values, b1, x1)
    out_dense = torch.baddbmm(b2.unsqueeze(2), w2, x2)
    torch.testing.assert_close(out_sparse, out_dense)
    grad = torch.randn(out_dense.shape, generator=gen)
    out_sparse.backward(grad)
    out_dense.backward(grad)
    torch.testing.assert_close(pattern.scatter(values.grad), w2.grad * mask)
    torch.testing.assert_close(b1.grad, b2.grad)
    torch.testing.assert_close(x1.grad, x2.grad)


def test_conv_tickets_train_as_they_would_alone(small_config):
    gen = generator("conv-data")
    x, y = torch.randn(40, 3, 8, 8, generator=gen), torch.randint(0, 10, (40,), generator=gen)
    data = Data(x[:30], y[:30], x[30:35], y[30:35], x[35:], y[35:], 10)
    model = build_model("conv2", (3, 8, 8), 10, [16])
    jobs = jobs_for(model, MIXED[:3], rounds=1)
    config = small_config(batch_size=10, eval_every=2)
    together = engine.train(model, jobs, data, config, 0, 4)
    for job, outcome in zip(jobs, together):
        assert same(engine.train(model, [job], data, config, 0, 4)[0], outcome)
    # the module's own forward (its plan) and the stack compute the same function
    stack = engine.Stack(model, jobs[:1], "cpu")
    model.load_state_dict({k: v * jobs[0].mask.get(k, 1) for k, v in jobs[0].state.items()})
    torch.testing.assert_close(stack.forward(stack.inputs(x[None, :4]))[0].T, model(x[:4]))


def test_diverging_ticket_leaves_its_stack_alone(small_config, small_data):
    model = lenet()
    healthy, = jobs_for(model, [("xavier_normal", 0)])
    blowup, = jobs_for(model, [("normal", 1)], scale=1e30)
    config = small_config()
    together = engine.train(model, [blowup, healthy], small_data, config, 0, 60)
    assert together[0].diverged and not math.isfinite(together[0].rows[-1]["train_loss"])
    assert len(together[0].rows) == 2  # stops at the first evaluation after the blow-up
    assert same(together[1], engine.train(model, [healthy], small_data, config, 0, 60)[0])


def test_pruned_entries_stay_zero_through_adam(small_config, small_data, monkeypatch):
    """Masked gradients keep Adam's moments, and so the pruned weights, exactly zero."""
    model = lenet()
    kinds = prunable_tensors(model, True)
    state = initialize(model, "xavier_normal", 1.0, "default", 0, "init")
    mask = random_prune(full_mask({n: state[n] for n in kinds}),
                        {n: state[n].numel() // 2 for n in kinds}, generator("half"))
    seen = []
    original_step = Adam.step

    def checked_step(self):
        original_step(self)
        for p, exp_avg, exp_avg_sq, m in zip(self.params, self.exp_avg, self.exp_avg_sq, kept_by_param):
            pruned = ~m
            seen.append(bool((exp_avg[pruned] == 0).all() and (exp_avg_sq[pruned] == 0).all()
                             and (p[pruned] == 0).all()))

    kept_by_param = [mask[name][None] for name, _ in model.named_parameters()]  # every tensor is dense at 50%
    monkeypatch.setattr(Adam, "step", checked_step)
    outcome, = engine.train(model, [engine.Job(state, mask, 0)], small_data, small_config(eval_every=1), 0, 25)
    assert len(seen) == 25 * 6 and all(seen)  # 3 weights + 3 biases
    assert all((outcome.weights[n][~m] == 0).all() for n, m in mask.items())
    assert len(outcome.rows) == 26  # eval_every=1: before training and after each step


def adam_against_torch(shapes, seed: str, sparse_grads: bool) -> list[tuple]:
    """(ours, torch's) parameters after 30 steps on the same random gradients."""
    gen = generator(seed)
    ours_params = [torch.randn(shape, generator=gen) for shape in shapes]
    torch_params = [p.clone() for p in ours_params]
    ours, reference = Adam(ours_params, lr=1.2e-3), torch.optim.Adam(torch_params, lr=1.2e-3)
    for _ in range(30):
        for p, q in zip(ours_params, torch_params):
            p.grad = torch.randn(p.shape, generator=gen) * ((p.abs() > 0.5) if sparse_grads else 1)
            q.grad = p.grad.clone()
        ours.step()
        reference.step()
    return list(zip(ours_params, torch_params))


def test_adam_computes_what_torch_adam_does():
    """Bit for bit on tensors this small (torch's exact scalar square root handles them)."""
    assert all(torch.equal(p, q) for p, q in adam_against_torch([(4, 5), (7,)], "adam-test", False))


def test_adam_square_root_is_correctly_rounded_wherever_a_value_sits():
    """torch's vectorised CPU sqrt is an ulp off for many values, unlike its scalar tail: a value's
    result would depend on its position in the stack. Ours equals float64's, rounded."""
    gen = generator("sqrt-test")
    values = torch.rand(1003, generator=gen) ** 4 * (torch.rand(1003, generator=gen) < 0.7)  # zeros too
    whole, part = torch.empty_like(values), torch.empty(5)
    sqrt(values, whole)
    sqrt(values[998:].clone(), part)
    assert torch.equal(whole, values.double().sqrt().float())
    assert torch.equal(whole[998:], part)


def test_adam_matches_torch_adam_on_large_tensors():
    """Differences are those of torch's approximate square root: float32 rounding, no more."""
    for p, q in adam_against_torch([(300, 40), (300,)], "adam-test-large", sparse_grads=True):  # zeros, as pruning makes
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def elementwise_adam(params, grads_per_step, lr=1.2e-3, betas=(0.9, 0.999), eps=1e-8) -> list:
    """Adam as adam.py documents it, one elementwise operation at a time: the unfused reference."""
    params = [p.clone() for p in params]
    averages, squares = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    for step, grads in enumerate(grads_per_step, 1):
        for p, g, m, v in zip(params, grads, averages, squares):
            m.lerp_(g, 1 - betas[0])
            v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
            denom = torch.empty_like(v)
            sqrt(v, denom)
            denom.div_((1 - betas[1] ** float(step)) ** 0.5).add_(eps)
            p.addcdiv_(m, denom, value=-lr / (1 - betas[0] ** float(step)))
    return params + averages + squares


def test_fused_adam_steps_exactly_as_the_elementwise_operations():
    """The fused kernel steps whole blocks, the operations the rest: together the same bits as the
    operations alone, on sizes around the block boundary, with zeros and gradients of every scale."""
    gen = generator("fused-adam-test")
    shapes = [(1,), (63,), (64,), (65,), (3, 100), (300, 41)]
    params = [torch.randn(shape, generator=gen) for shape in shapes]
    grads_per_step = []
    for _ in range(40):
        grads = [torch.randn(s, generator=gen) * 10.0 ** torch.randint(-8, 3, s, generator=gen)
                 * (torch.rand(s, generator=gen) < 0.6) for s in shapes]  # pruned entries: zero gradient
        grads_per_step.append(grads)
    ours = Adam([p.clone() for p in params], lr=1.2e-3)
    assert sum(ours.fused) == 64 + 64 + 256 + 12288  # the fused kernel takes part
    for grads in grads_per_step:
        for p, g in zip(ours.params, grads):
            p.grad = g.clone()
        ours.step()
    expected = elementwise_adam(params, grads_per_step)
    assert all(torch.equal(a, b) for a, b in zip(ours.params + ours.exp_avg + ours.exp_avg_sq, expected))


def test_stacks_on_cpu_stay_cache_sized_and_on_gpus_fill_memory():
    """A ticket's numbers do not depend on its stack, so the stack size is free to follow speed."""
    model = build_model("lenet_300_100", (1, 28, 28), 10)
    cpu, gpu = engine.max_stack(model, "cpu"), engine.max_stack(model, "cuda:0")
    assert (cpu, gpu) == (15, 125)  # 266,610 weights each: 2^22 and 2^25 weights a stack
    assert engine.max_stack(build_model("conv6", (3, 32, 32), 10), "cpu") == 1
