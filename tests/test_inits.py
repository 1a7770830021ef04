import math

import pytest
import torch
from torch import nn

from ticketlib.nets.inits import INITIALIZERS, TRUNCATED_STD_FACTOR, fans, initialize

LINEAR = (400, 1000)   # fan_in 1000, fan_out 400: 400k draws
CONV = (128, 64, 3, 3)  # fan_in 576, fan_out 1152: 74k draws


def expected(name, shape):
    """(mean, std, low, high) of each scheme at scale 1, from its published formula."""
    fan_in, fan_out = fans(torch.empty(shape))
    def uniform(bound):
        return 0.0, bound / math.sqrt(3), -bound, bound

    def normal(std):
        return 0.0, std, -math.inf, math.inf

    xavier_std = math.sqrt(2 / (fan_in + fan_out))
    xavier_bound = math.sqrt(6 / (fan_in + fan_out))
    kaiming = math.sqrt(2 / fan_in)
    table = {
        "normal": normal(1.0),
        "uniform": (0.5, math.sqrt(1 / 12), 0.0, 1.0),
        "uniform_symmetric": uniform(math.sqrt(3)),      # unit variance, as N(0, 1)
        "uniform_centered": uniform(0.5),                # U(0, 1)'s variance, zero mean
        "kaiming_normal": normal(kaiming),
        "kaiming_uniform": uniform(math.sqrt(6 / fan_in)),
        "xavier_normal": normal(xavier_std),
        "xavier_uniform": uniform(xavier_bound),
        "xavier_normal_half": normal(0.5 * xavier_std),
        "xavier_normal_double": normal(2 * xavier_std),
        "xavier_uniform_half": uniform(0.5 * xavier_bound),
        "xavier_uniform_double": uniform(2 * xavier_bound),
        "lecun_normal": normal(math.sqrt(1 / fan_in)),
        "lecun_uniform": uniform(math.sqrt(3 / fan_in)),
        "orthogonal": normal(1 / math.sqrt(max(fan_in, shape[0]))),  # Σw² = min(rows, cols)
        "truncated_normal": (0.0, kaiming, -2 * kaiming / TRUNCATED_STD_FACTOR, 2 * kaiming / TRUNCATED_STD_FACTOR),
        "pytorch_default": uniform(1 / math.sqrt(fan_in)),
        "signed_constant": (0.0, kaiming, -kaiming, kaiming),
    }
    return table[name]


def test_every_scheme_is_in_one_family():
    from ticketlib.names import FAMILIES
    members = [name for family in FAMILIES.values() for name in family]
    assert sorted(members) == sorted(INITIALIZERS)


def test_every_scheme_has_a_test_and_a_formula():
    assert len(INITIALIZERS) == 18  # the study's schemes; a new one adds its line to expected()
    for name, scheme in INITIALIZERS.items():
        assert scheme.__doc__ and "(" in scheme.__doc__
        expected(name, (10, 10))  # KeyError if a scheme has no expected moments


@pytest.mark.parametrize("shape", [LINEAR, CONV], ids=["linear", "conv"])
@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_moments_and_bounds_match_formula(name, shape):
    w = torch.empty(shape)
    INITIALIZERS[name](w, torch.Generator().manual_seed(0))
    mean, std, low, high = expected(name, shape)
    assert w.mean().item() == pytest.approx(mean, abs=0.02 * std + 1e-4)
    assert w.std().item() == pytest.approx(std, rel=0.02)
    assert w.min().item() >= low - 1e-6 and w.max().item() <= high + 1e-6
    if math.isfinite(low) and name != "truncated_normal":  # bounded schemes reach their bounds
        assert w.min().item() < low + 0.01 * (high - low) and w.max().item() > high - 0.01 * (high - low)


def test_signed_constant_is_two_valued():
    w = torch.empty(CONV)
    INITIALIZERS["signed_constant"](w, torch.Generator().manual_seed(0))
    assert w.abs().unique().tolist() == [pytest.approx(math.sqrt(2 / 576))]
    assert (w > 0).float().mean().item() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("shape", [(100, 300), (300, 100), (32, 16, 3, 3)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    w = torch.empty(shape)
    INITIALIZERS["orthogonal"](w, torch.Generator().manual_seed(0))
    flat = w.flatten(1)
    gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    assert torch.allclose(gram, torch.eye(len(gram)), atol=1e-4)


def test_scale_multiplies_weights_and_leaves_bias_rule():
    model_a, model_b = nn.Linear(500, 200), nn.Linear(500, 200)
    initialize(model_a, "kaiming_normal", 1.0, "default", 3, "init")
    initialize(model_b, "kaiming_normal", 0.25, "default", 3, "init")
    assert torch.allclose(model_b.weight, 0.25 * model_a.weight)
    assert torch.equal(model_a.bias, model_b.bias)
    bound = 1 / math.sqrt(500)
    assert model_a.bias.abs().max() <= bound and model_a.bias.abs().max() > 0.9 * bound


def test_zeros_bias_init():
    model = nn.Conv2d(3, 8, 3)
    initialize(model, "xavier_uniform", 1.0, "zeros", 0, "init")
    assert torch.count_nonzero(model.bias) == 0


def test_draw_is_seeded_by_run_not_by_global_rng():
    a, b = nn.Linear(20, 10), nn.Linear(20, 10)
    torch.manual_seed(1)
    initialize(a, "lecun_normal", 1.0, "default", 7, "init")
    torch.manual_seed(999)
    torch.randn(1000)  # consumes global randomness in between
    initialize(b, "lecun_normal", 1.0, "default", 7, "init")
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    initialize(b, "lecun_normal", 1.0, "default", 8, "init")
    assert not torch.equal(a.weight, b.weight)
    initialize(b, "lecun_normal", 1.0, "default", 7, "reinit")
    assert not torch.equal(a.weight, b.weight)


def test_draws_do_not_depend_on_the_thread_count():
    """θ0 is the same whichever thread count the caller runs (orthogonal's QR would differ)."""
    from ticketlib.nets.models import build_model
    model = build_model("lenet_300_100", (784,), 10)
    threads = torch.get_num_threads()
    draws = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            draws.append(initialize(model, "orthogonal", 1.0, "default", 0, "init"))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(draws[0][k], draws[1][k]) for k in draws[0])
    assert torch.get_num_threads() == threads


def test_study_group_keeps_the_main_grids_sixteen_schemes():
    from ticketlib.nets.inits import resolve
    assert resolve("study") == [n for n in INITIALIZERS if n not in ("uniform_symmetric", "uniform_centered")]
    assert len(resolve("study")) == 16 and resolve("all") == list(INITIALIZERS)


def test_relative_lr_factors_are_rms_over_xavier_sigma():
    from ticketlib.nets.inits import relative_lr_factors
    from ticketlib.nets.models import build_model
    model = build_model("lenet_300_100", (1, 28, 28), 10)
    xavier = relative_lr_factors(model, initialize(model, "xavier_normal", 1.0, "default", 0, "init"))
    assert set(xavier) == {"hidden.0.weight", "hidden.1.weight", "out.weight"}
    assert all(f == pytest.approx(1.0, abs=0.06) for f in xavier.values())  # Xavier's own step, up to sampling
    wide = relative_lr_factors(model, initialize(model, "xavier_normal", 4.0, "default", 0, "init"))
    assert all(wide[n] == pytest.approx(4 * xavier[n], rel=1e-6) for n in xavier)
    unit = relative_lr_factors(model, initialize(model, "normal", 1.0, "default", 0, "init"))
    assert unit["hidden.0.weight"] == pytest.approx(1 / math.sqrt(2 / (784 + 300)), rel=0.01)
    mean_half = relative_lr_factors(model, initialize(model, "uniform", 1.0, "default", 0, "init"))
    assert mean_half["out.weight"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(2 / 110), rel=0.05)  # RMS counts the mean
