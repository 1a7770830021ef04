import pytest
import torch

from ticketlib.errors import TicketError
from ticketlib.nets.models import build_model, prunable_tensors
from ticketlib.nets.pruning import (
    check_rates,
    full_mask,
    kept,
    magnitude_prune,
    random_prune,
)
from ticketlib.seeds import generator

RATES = {"fc": 0.2, "conv": 0.1, "output": 0.1}


def lenet_params(prune_biases=False):
    model = build_model("lenet_300_100", (784,), 10)
    kinds = prunable_tensors(model, prune_biases)
    params = {n: p.detach() for n, p in model.named_parameters() if n in kinds}
    return model, kinds, params


def test_layerwise_counts_follow_rates_per_kind():
    _, kinds, params = lenet_params()
    mask = full_mask(params)
    expected = {"hidden.0.weight": 235200, "hidden.1.weight": 30000, "out.weight": 1000}
    for _ in range(3):
        mask = magnitude_prune(params, mask, kinds, RATES, "layerwise")
        rate = {"hidden.0.weight": 0.2, "hidden.1.weight": 0.2, "out.weight": 0.1}
        expected = {n: c - int(rate[n] * c + 0.5) for n, c in expected.items()}
        assert kept(mask) == expected
    assert expected == {"hidden.0.weight": 120422, "hidden.1.weight": 15360, "out.weight": 729}


def test_conv_layers_use_conv_rate():
    model = build_model("conv2", (3, 32, 32), 10)
    kinds = prunable_tensors(model, False)
    params = {n: p.detach() for n, p in model.named_parameters() if n in kinds}
    mask = magnitude_prune(params, full_mask(params), kinds, RATES, "layerwise")
    assert kept(mask)["convs.0.weight"] == 1728 - 173          # 10% of 64·3·3·3
    assert kept(mask)["hidden.0.weight"] == 16384 * 256 * 4 // 5  # 20% of fc
    assert kept(mask)["out.weight"] == 2560 - 256                # 10% of output


def test_prunes_smallest_magnitudes_and_masks_nest():
    _, kinds, params = lenet_params()
    first = magnitude_prune(params, full_mask(params), kinds, RATES, "layerwise")
    second = magnitude_prune(params, first, kinds, RATES, "layerwise")
    for name, w in params.items():
        assert first[name].dtype == torch.bool and first[name].shape == w.shape
        assert not (second[name] & ~first[name]).any()  # nested
        assert w[~first[name]].abs().max() <= w[first[name]].abs().min()


def test_ties_are_broken_by_position():
    w = {"out.weight": torch.tensor([[1.0, 0.5, 0.5, 0.5, 2.0]])}
    mask = magnitude_prune(w, full_mask(w), {"out.weight": "output"}, {"fc": 0.2, "conv": 0.2, "output": 0.4},
                           "layerwise")
    assert mask["out.weight"].tolist() == [[True, False, False, True, True]]


def test_biases_pruned_only_when_asked():
    _, kinds, params = lenet_params(prune_biases=True)
    mask = magnitude_prune(params, full_mask(params), kinds, {"fc": 0.2, "conv": 0.2, "output": 0.2}, "layerwise")
    assert kept(mask)["hidden.0.bias"] == 240 and kept(mask)["out.bias"] == 8
    assert "hidden.0.bias" not in lenet_params(prune_biases=False)[1]


def test_global_pruning_counts_the_pool():
    _, kinds, params = lenet_params()
    mask = magnitude_prune(params, full_mask(params), kinds, {"global": 0.2}, "global")
    total = sum(p.numel() for p in params.values())
    assert sum(kept(mask).values()) == total - int(0.2 * total + 0.5)
    threshold = max(params[n][~m].abs().max() for n, m in mask.items() if (~m).any())
    assert all(params[n][m].abs().min() >= threshold for n, m in mask.items())


def test_random_pruning_matches_counts_and_nests():
    _, kinds, params = lenet_params()
    ticket = magnitude_prune(params, full_mask(params), kinds, RATES, "layerwise")
    rand = random_prune(full_mask(params), kept(ticket), generator(0, "random"))
    assert kept(rand) == kept(ticket)
    assert not all(torch.equal(rand[n], ticket[n]) for n in ticket)
    ticket2 = magnitude_prune(params, ticket, kinds, RATES, "layerwise")
    rand2 = random_prune(rand, kept(ticket2), generator(0, "random", 2))
    assert kept(rand2) == kept(ticket2) and all(not (rand2[n] & ~rand[n]).any() for n in rand)


@pytest.mark.parametrize("scope,rates", [("layerwise", {"fc": 1.0, "conv": 0.1, "output": 0.1}),
                                         ("layerwise", {"fc": 0.0, "conv": 0.1, "output": 0.1}),
                                         ("layerwise", {"fc": 0.2}),
                                         ("global", {"fc": 0.2}),
                                         ("sideways", {"global": 0.2})])
def test_bad_rates_are_refused(scope, rates):
    with pytest.raises(TicketError):
        check_rates(scope, rates)
