import numpy as np
import pytest
import torch

from ticketlib.data.datasets import load_dataset
from ticketlib.errors import TicketError
from ticketlib.nets.models import build_model, prunable_tensors


def test_mnist1d_is_generated_deterministically(small_data, tmp_path):
    again = load_dataset("mnist1d", num_samples=1000, val_size=80, root=tmp_path)
    assert again is not small_data  # generated afresh in another root
    assert torch.equal(again.x_train, small_data.x_train) and torch.equal(again.y_test, small_data.y_test)
    assert (tmp_path / "datasets" / "mnist1d-1000.npz").is_file()


def test_mnist1d_splits(small_data):
    d = small_data
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (720, 80, 200)
    assert d.input_shape == (40,) and d.num_classes == 10


def test_validation_comes_from_train_and_stats_from_train_split(tmp_path):
    """Rows carry their index as value: train ids 0..99, test ids 1000..1019."""
    ids = np.arange(100, dtype=np.float32)
    name = write_npz(tmp_path / "ids.npz", x_train=np.stack([ids, ids], 1), y_train=np.arange(100) % 3,
                     x_test=np.stack([ids[:20] + 1000] * 2, 1), y_test=np.zeros(20, int))
    d = load_dataset(name, val_size=25, root=tmp_path)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (75, 25, 20)
    # the training split is normalised by its own statistics, not those of train+validation
    assert d.x_train.mean().item() == pytest.approx(0, abs=1e-5)
    assert d.x_train.std().item() == pytest.approx(1, abs=1e-5)
    assert abs(d.x_val.mean().item()) > 1e-3
    # train ∪ validation is exactly the training set (equally spaced ids); test is untouched
    joined = torch.cat([d.x_train, d.x_val])[:, 0].sort().values
    gaps = joined.diff()
    assert len(joined) == 100 and torch.allclose(gaps, gaps[0].expand_as(gaps), rtol=1e-3)
    assert (d.x_test[:, 0] > joined.max()).all()
    assert torch.allclose(d.x_test[:, 0].diff(), gaps[0].expand(19), rtol=1e-3)


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_images_become_normalised_nchw(tmp_path):
    rng = np.random.default_rng(0)
    name = write_npz(tmp_path / "img.npz", x_train=rng.integers(0, 256, (120, 8, 8, 3), dtype=np.uint8),
                     y_train=rng.integers(0, 4, 120), x_test=rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8),
                     y_test=rng.integers(0, 4, 30))
    d = load_dataset(name, val_size=20, root=tmp_path)
    assert d.x_train.shape == (100, 3, 8, 8) and d.x_test.shape == (30, 3, 8, 8) and len(d.y_val) == 20
    assert torch.allclose(d.x_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(d.x_train.std((0, 2, 3)), torch.ones(3), atol=1e-4)
    gray = write_npz(tmp_path / "gray.npz", x_train=np.zeros((50, 5, 5), np.uint8) + np.arange(50, dtype=np.uint8)[:, None, None],
                     y_train=np.arange(50) % 2, x_test=np.zeros((10, 5, 5), np.uint8), y_test=np.zeros(10, int))
    assert load_dataset(gray, root=tmp_path).x_train.shape == (45, 1, 5, 5)  # default validation: a tenth


@pytest.mark.parametrize("arrays,message", [
    (dict(x_train=np.zeros((10, 4), np.float32), y_train=np.zeros(10), x_test=np.zeros((5, 4), np.float32)),
     "lacks array"),
    (dict(x_train=np.zeros((10, 4), np.float32), y_train=np.zeros(9), x_test=np.zeros((5, 4), np.float32),
          y_test=np.zeros(5)), "10 rows but y_train has 9"),
    (dict(x_train=np.zeros((20, 4), np.int64), y_train=np.arange(20) % 2, x_test=np.zeros((5, 4), np.int64),
          y_test=np.zeros(5, int)), "uint8 images N×H×W"),
])
def test_bad_npz_gives_clear_error(tmp_path, arrays, message):
    with pytest.raises(TicketError, match=message):
        load_dataset(write_npz(tmp_path / "bad.npz", **arrays), root=tmp_path)


def test_missing_or_unreadable_npz(tmp_path):
    with pytest.raises(TicketError, match="not found"):
        load_dataset(f"npz:{tmp_path}/nope.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(TicketError, match="is not a zip archive, not an npz archive"):
        load_dataset(f"npz:{tmp_path}/text.npz")


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(TicketError, match="valid: cifar10, fashion_mnist, mnist, mnist1d, npz:PATH"):
        load_dataset("imagenet")


@pytest.mark.parametrize("name,kinds", [
    ("lenet_300_100", {"hidden.0": "fc", "hidden.1": "fc", "out": "output"}),
    ("conv2", {"convs.0": "conv", "convs.1": "conv", "hidden.0": "fc", "hidden.1": "fc", "out": "output"}),
    ("conv4", {**{f"convs.{i}": "conv" for i in range(4)}, "hidden.0": "fc", "hidden.1": "fc", "out": "output"}),
    ("conv6", {**{f"convs.{i}": "conv" for i in range(6)}, "hidden.0": "fc", "hidden.1": "fc", "out": "output"}),
])
def test_models_declare_prunable_layers(name, kinds):
    shape = (40,) if name == "lenet_300_100" else (3, 32, 32)
    model = build_model(name, shape, 10)
    assert model.layer_kinds == kinds
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
    assert set(prunable_tensors(model, False)) == {f"{k}.weight" for k in kinds}


def test_model_sizes_match_frankle_carbin():
    lenet = build_model("lenet_300_100", (1, 28, 28), 10)
    assert sum(p.numel() for n, p in lenet.named_parameters() if "weight" in n) == 266_200
    conv6 = build_model("conv6", (3, 32, 32), 10)
    assert conv6.hidden[0].in_features == 256 * 4 * 4


def test_lenet_widths_and_activation_are_configurable():
    model = build_model("lenet_300_100", (40,), 10, hidden=(50, 20, 7), activation="leaky_relu")
    assert [layer.out_features for layer in model.hidden] == [50, 20, 7]
    assert model.act.negative_slope == 0.05


def test_conv_models_refuse_flat_data():
    with pytest.raises(TicketError, match="image inputs"):
        build_model("conv2", (40,), 10)
