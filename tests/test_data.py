"""Tests for pepita_lab.data: real MNIST/Fashion-MNIST from the shared mirror, CIFAR from small
files in the real pickle format, missing data, the synthetic task and the data folder rules.

Loaded pixels are checked against an independent reader (numpy on the raw files) and against
torchvision's own per-sample path (`ToTensor()` + `flatten`).
"""

import gzip
import hashlib
import pickle

import numpy as np
import pytest
import torch
import torchvision
from torchvision.transforms import ToTensor

import pepita_lab as pl
from conftest import MIRROR, needs_mirror
from pepita_lab.config import ConfigError, RunConfig
from pepita_lab.data import (
    DATASET_NAMES,
    DataIntegrityError,
    DataNotFoundError,
    TensorData,
    as_tensor_data,
    install_mirror,
    load_data,
    resolve_data_dir,
)

CLOSED_PORT = "http://127.0.0.1:9/"  # "discard" port: refused at once, so no test downloads


@pytest.fixture(scope="session")
def mnist(data_dir):
    return load_data("mnist", data_dir=data_dir, download=False)


@pytest.fixture(scope="session")
def fashion(data_dir):
    return load_data("fashion-mnist", data_dir=data_dir, download=False)


def read_idx_gz(path, offset):
    """Independent IDX reader: skip the header, the rest is uint8."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


@needs_mirror
def test_install_mirror_writes_decompressed_files_once(data_dir):
    sizes = {"train-images-idx3-ubyte": 47040016, "train-labels-idx1-ubyte": 60008,
             "t10k-images-idx3-ubyte": 7840016, "t10k-labels-idx1-ubyte": 10008}
    again = install_mirror(MIRROR, data_dir)  # second run: everything is already there
    assert sorted(p.relative_to(data_dir).as_posix() for p in again) == sorted(
        f"{name}/raw/{f}" for name in ("MNIST", "FashionMNIST") for f in sizes)
    assert all(p.stat().st_size == sizes[p.name] for p in again)
    mtimes = [p.stat().st_mtime_ns for p in again]
    install_mirror(MIRROR, data_dir)
    assert [p.stat().st_mtime_ns for p in again] == mtimes  # skipped, not rewritten


def test_install_mirror_without_datasets_raises(tmp_path):
    with pytest.raises(DataNotFoundError, match="no dataset files"):
        install_mirror(tmp_path / "empty-mirror", tmp_path / "data")


@pytest.mark.parametrize("fixture", ["mnist", "fashion"])
def test_mnist_likes_shapes_dtypes_range(fixture, request):
    data = request.getfixturevalue(fixture)
    assert isinstance(data, TensorData)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.y_train.shape == (60000,) and data.y_test.shape == (10000,)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    assert set(data.y_train.unique().tolist()) == set(range(10))
    assert data.image_shape == (1, 28, 28) and data.n_classes == 10 and data.n_features == 784
    assert data.x_train.device.type == "cpu"


@pytest.mark.parametrize("fixture, folder", [("mnist", "MNIST"), ("fashion", "FashionMNIST")])
def test_mnist_likes_equal_raw_files(fixture, folder, request):
    data = request.getfixturevalue(fixture)
    raw = MIRROR / folder / "raw"
    for split, x, y in (("train", data.x_train, data.y_train), ("t10k", data.x_test, data.y_test)):
        pixels = read_idx_gz(raw / f"{split}-images-idx3-ubyte.gz", 16).reshape(len(x), 784)
        labels = read_idx_gz(raw / f"{split}-labels-idx1-ubyte.gz", 8)
        assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(pixels.copy()))
        assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))


def test_mnist_known_values(mnist, fashion, data_dir):
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(mnist.y_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(fashion.y_train).tolist() == [6000] * 10
    assert abs(mnist.x_train.mean().item() - 0.1307) < 1e-4  # the usual normalisation constant
    ds = torchvision.datasets.MNIST(data_dir, train=True, transform=ToTensor())
    for n in (0, 1, 59999):
        assert torch.equal(mnist.x_train[n], ds[n][0].flatten())


def test_subset_keeps_first_training_samples(mnist, data_dir):
    small = load_data("mnist", data_dir=data_dir, subset=100, download=False)
    assert small.x_train.shape == (100, 784) and small.y_train.shape == (100,)
    assert torch.equal(small.x_train, mnist.x_train[:100])
    assert small.x_test.shape == (10000, 784)  # the test split stays whole


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_subset_must_be_positive_int(bad):
    with pytest.raises(ValueError, match="subset"):
        load_data("synthetic", subset=bad)


# ---------------------------------------------------------------- CIFAR in the real file format


class Py2Str(bytes):
    """A Python 2 `str`: how keys and names are stored in the real CIFAR pickles."""


class Py2Pickler(pickle._Pickler):
    """Writes Py2Str as SHORT_BINSTRING, so `encoding="latin1"` (torchvision) reads str and
    `encoding="bytes"` (the CIFAR web page's recipe) reads bytes, as with the real files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj):
        self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def write_pickle(path, mapping):
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump({Py2Str(k.encode()): v for k, v in mapping.items()})
    return hashlib.md5(path.read_bytes()).hexdigest()


def names(prefix, n):
    return [Py2Str(f"{prefix}{i}".encode()) for i in range(n)]


def batch(rng, n, n_classes, label_keys):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)  # rows: R, G, B planes of 32x32
    labels = {key: rng.integers(0, n_classes, size=n).tolist() for key in label_keys}
    return {"data": data, **labels}


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """Small CIFAR-10/100 folders; torchvision's md5 lists patched to these files' md5s only here,
    so the loader runs torchvision's real, checked code path."""
    rng = np.random.default_rng(0)
    c10, c100 = tmp_path / "cifar-10-batches-py", tmp_path / "cifar-100-python"
    c10.mkdir(), c100.mkdir()
    raw = {f"data_batch_{i}": batch(rng, 4, 10, ["labels"]) for i in range(1, 6)}
    raw["test_batch"] = batch(rng, 3, 10, ["labels"])
    raw["data_batch_2"]["data"][1, 2 * 1024 + 5 * 32 + 7] = 201  # blue, row 5, column 7
    md5 = {name: write_pickle(c10 / name, d) for name, d in raw.items()}
    meta = {"label_names": names("class", 10), "num_cases_per_batch": 4, "num_vis": 3072}
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]]
                                            for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": write_pickle(c10 / "batches.meta", meta)})

    keys = ["fine_labels", "coarse_labels"]
    raw100 = {"train": batch(rng, 6, 100, keys), "test": batch(rng, 2, 100, keys)}
    md5 = {name: write_pickle(c100 / name, d) for name, d in raw100.items()}
    meta = {"fine_label_names": names("fine", 100), "coarse_label_names": names("coarse", 20)}
    cls = torchvision.datasets.CIFAR100
    monkeypatch.setattr(cls, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(cls, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": write_pickle(c100 / "meta", meta)})
    return tmp_path, raw, raw100


def test_fake_cifar_files_read_like_real_ones(fake_cifar):
    root, _, _ = fake_cifar
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    assert set(entry) == {b"data", b"labels"} and entry[b"data"].shape == (4, 3072)


def test_cifar10_layout_matches_to_tensor(fake_cifar):
    root, raw, _ = fake_cifar
    data = load_data("cifar10", data_dir=root)  # download=True: files are valid, so no download
    assert data.x_train.shape == (20, 3072) and data.x_test.shape == (3, 3072)
    assert data.image_shape == (3, 32, 32) and data.n_classes == 10
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    # Sample 1 of data_batch_2 is training sample 5; pixel (c=2, i=5, j=7) was set to 201.
    assert data.x_train[5, 2 * 1024 + 5 * 32 + 7] * 255 == 201
    rows = np.concatenate([raw[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    assert torch.equal((data.x_train * 255).round().to(torch.uint8), torch.from_numpy(rows))
    labels = sum((raw[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert data.y_train.tolist() == labels
    assert data.y_test.tolist() == raw["test_batch"]["labels"]
    ds = torchvision.datasets.CIFAR10(root, train=True, transform=ToTensor())
    for n in range(len(ds)):
        assert torch.equal(data.x_train[n], ds[n][0].flatten())


def test_cifar100_uses_fine_labels(fake_cifar):
    root, _, raw100 = fake_cifar
    data = load_data("cifar100", data_dir=root, download=False, subset=4)
    assert data.x_train.shape == (4, 3072) and data.x_test.shape == (2, 3072)
    assert data.n_classes == 100 and data.image_shape == (3, 32, 32)
    assert data.y_train.tolist() == raw100["train"]["fine_labels"][:4]
    assert torch.equal((data.x_test * 255).round().to(torch.uint8),
                       torch.from_numpy(raw100["test"]["data"]))


def test_install_mirror_copies_cifar_folders(fake_cifar, tmp_path):
    root, _, _ = fake_cifar
    files = install_mirror(root, tmp_path / "copy")
    assert len(files) == 7 + 3
    assert load_data("cifar100", data_dir=tmp_path / "copy", download=False).x_train.shape[0] == 6


# ---------------------------------------------------------------- missing data, bad names


@pytest.mark.parametrize("name, folder",
                         [("mnist", "MNIST/raw"), ("cifar10", "cifar-10-batches-py")])
def test_missing_data_without_download(tmp_path, name, folder):
    with pytest.raises(DataNotFoundError) as err:
        load_data(name, data_dir=tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / folder) in message and "--mirror" in message
    assert err.value.__suppress_context__  # no torchvision traceback above ours
    assert list(tmp_path.iterdir()) == []  # looking creates nothing


def test_missing_data_when_download_fails(tmp_path, monkeypatch):
    # Mirrors pointed at a closed local port: offline behaviour, fast and never a real download.
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [CLOSED_PORT])
    with pytest.raises(DataNotFoundError, match="download failed") as err:
        load_data("mnist", data_dir=tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", CLOSED_PORT + "cifar.tar.gz")
    with pytest.raises(DataNotFoundError, match="download failed"):  # URLError, not RuntimeError
        load_data("cifar10", data_dir=tmp_path)


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="'imagenet'") as err:
        load_data("imagenet")
    assert all(name in str(err.value) for name in DATASET_NAMES)


# ---------------------------------------------------------------- synthetic task


def test_synthetic_shapes_and_classes():
    data = load_data("synthetic", synthetic_size=(500, 200), synthetic_features=12,
                     synthetic_classes=5)
    assert data.x_train.shape == (500, 12) and data.x_test.shape == (200, 12)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.image_shape == (1, 1, 12) and data.n_classes == 5 and data.n_features == 12
    for seed in range(5):
        data = load_data("synthetic", seed=seed)
        assert set(data.y_train.tolist()) == set(range(10))
        assert set(data.y_test.tolist()) == set(range(10))


def test_synthetic_deterministic_per_seed():
    a, b, c = (load_data("synthetic", seed=s) for s in (3, 3, 4))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.y_train, c.y_train)


def test_synthetic_subset_is_a_prefix():
    full, small = load_data("synthetic"), load_data("synthetic", subset=10)
    assert torch.equal(small.x_train, full.x_train[:10]) and torch.equal(small.x_test, full.x_test)


def test_to_moves_every_tensor():
    data = load_data("synthetic", device=torch.device("cpu")).to("meta")
    tensors = (data.x_train, data.y_train, data.x_test, data.y_test)
    assert {t.device.type for t in tensors} == {"meta"}


# ---------------------------------------------------------------- data folder


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PEPITA_LAB_DATA", raising=False)
    assert resolve_data_dir() == tmp_path / "data"
    monkeypatch.setenv("PEPITA_LAB_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir("rel") == tmp_path / "rel"  # relative to the working directory


# ---------------------------------------------------------------- damaged archives


def test_archives_failing_torchvision_md5_are_named_not_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [CLOSED_PORT])
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", CLOSED_PORT + "cifar.tar.gz")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for filename, _ in torchvision.datasets.MNIST.resources:  # there, but not the real files
        (raw / filename).write_bytes(b"\x1f\x8b not MNIST")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not CIFAR")
    for name, bad in (("mnist", raw / "train-images-idx3-ubyte.gz"),
                      ("cifar10", tmp_path / "cifar-10-python.tar.gz")):
        for download in (False, True):
            with pytest.raises(DataIntegrityError) as err:
                load_data(name, data_dir=tmp_path, download=download)
            message = str(err.value)
            assert message.startswith(f"{bad} exists but fails torchvision's md5 check (md5 ")
            assert "not found" not in message and "\n" not in message
    assert bad.read_bytes() == b"not CIFAR"  # nothing downloaded over it


# ---------------------------------------------------------------- your own data


def own_arrays(n=300, m=100, d=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, classes, n),
            rng.normal(size=(m, d)).astype(np.float32), rng.integers(0, classes, m))


SYNTHETIC = RunConfig(dataset="synthetic", hidden=(16,), epochs=1, device="cpu")


def test_own_arrays_become_tensor_data():
    arrays = own_arrays()
    data = as_tensor_data(arrays, SYNTHETIC)
    assert (data.name, data.image_shape, data.n_classes, data.n_features) == (
        "custom", (1, 1, 12), 4, 12)
    for got, want in zip((data.x_train, data.y_train, data.x_test, data.y_test), arrays):
        assert torch.equal(got, torch.from_numpy(want).to(got.dtype))
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    tensors = as_tensor_data(tuple(torch.from_numpy(a) for a in arrays), SYNTHETIC)
    assert torch.equal(tensors.x_train, data.x_train) and torch.equal(tensors.y_test, data.y_test)
    assert as_tensor_data(data, SYNTHETIC) is data
    assert as_tensor_data(arrays, SYNTHETIC.replace(subset=50)).x_train.shape == (50, 12)


def test_own_images_keep_their_shape_and_pixels_are_scaled():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, 3, 8, 6), dtype=np.uint8)  # (N, C, H, W) pixels
    labels = rng.integers(0, 10, 40)
    data = as_tensor_data((images, labels, images[:10], labels[:10]), RunConfig())
    assert data.image_shape == (3, 8, 6) and data.n_classes == 10  # MNIST's, from the config
    assert torch.allclose(data.x_train * 255, torch.from_numpy(images.reshape(40, -1)).float())
    grey = as_tensor_data((images[:, 0], labels, images[:5, 0], labels[:5]), RunConfig())
    assert grey.image_shape == (1, 8, 6)
    flat = rng.random((20, 784), dtype=np.float32)  # flattened MNIST-sized images
    assert as_tensor_data((flat, labels[:20], flat, labels[:20]),
                          RunConfig(model="conv")).image_shape == (1, 28, 28)


@needs_mirror
def test_own_datasets_equal_the_loaded_ones(mnist, data_dir):
    """A pair of torch Datasets (torchvision's, item by item through ToTensor) gives the same
    tensors as the lab's loader (whole raw arrays)."""
    from torch.utils.data import Subset

    train = torchvision.datasets.MNIST(data_dir, train=True, transform=ToTensor())
    test = torchvision.datasets.MNIST(data_dir, train=False, transform=ToTensor())
    data = as_tensor_data((Subset(train, range(300)), Subset(test, range(100))), RunConfig())
    assert data.image_shape == (1, 28, 28) and data.n_classes == 10
    assert torch.equal(data.x_train, mnist.x_train[:300])
    assert torch.equal(data.y_train, mnist.y_train[:300])
    assert torch.equal(data.x_test, mnist.x_test[:100])


def test_own_data_trains():
    x, y, xt, yt = own_arrays(n=512, m=128)
    y, yt = (x[:, 0] > 0).astype(int), (xt[:, 0] > 0).astype(int)  # learnable: 2 classes
    config = SYNTHETIC.replace(epochs=3, lr=0.05, rule="bp")
    run = pl.train(config, data=as_tensor_data((x, y, xt, yt), config), progress=False)
    assert run.status == "completed" and run.test_acc > 0.85  # from 0.44 untrained
    assert run.net.weights[-1].shape == (2, 16)  # two classes, counted from the labels


@pytest.mark.parametrize("change, config, message", [
    (lambda a: (a[0], a[1][:10], a[2], a[3]), SYNTHETIC,
     "x_train has 300 samples but y_train has 10 labels: they must match"),
    (lambda a: (a[0][:, :, None], a[1], a[2][:, :, None], a[3]), SYNTHETIC, None),  # (N, H, W)
    (lambda a: (a[0].reshape(300, 2, 3, 2), a[1], a[2], a[3]), SYNTHETIC,
     "x_test has samples of shape (12,) but x_train has (2, 3, 2)"),
    (lambda a: (a[0][:, 0], a[1], a[2], a[3]), SYNTHETIC,
     "x_train has shape (300,): expected (N, d) features, (N, H, W) or (N, C, H, W) images"),
    (lambda a: (np.zeros((300, 28, 28, 3)), a[1], a[2], a[3]), SYNTHETIC,
     "x_train has shape (300, 28, 28, 3), channels last: pass images as (N, C, H, W)"),
    (lambda a: (a[0], a[1] + 0.5, a[2], a[3]), SYNTHETIC,
     "y_train holds torch.float64 values: labels must be integer class indices"),
    (lambda a: (a[0], np.eye(4)[a[1]].astype(int), a[2], a[3]), SYNTHETIC,
     "y_train has shape (300, 4): expected (N,) class indices (one-hot labels: pass "
     "y_train.argmax(1))"),
    (lambda a: (a[0], a[1], a[2], a[3] - 1), SYNTHETIC,
     "y_test holds label -1: labels must be in [0, 4) (dataset='synthetic' counts them"),
    (lambda a: (a[0], a[1] * 4, a[2], a[3]), RunConfig(),
     "y_train holds label 12: labels must be in [0, 10) (dataset='mnist' has 10 classes"),
    (lambda a: a, SYNTHETIC.replace(model="conv"),
     "model='conv' needs images: x_train has 12 features per sample; pass images as"),
    (lambda a: (np.full_like(a[0], np.nan), a[1], a[2], a[3]), SYNTHETIC,
     "x_train holds 3600 NaN or infinite values"),
    (lambda a: (a[0][:0], a[1][:0], a[2], a[3]), SYNTHETIC, "x_train is empty"),
    (lambda a: (a[0], a[1], a[2]), SYNTHETIC, "data=tuple: expected (x_train, y_train"),
    (lambda a: ("x", a[1], a[2], a[3]), SYNTHETIC, "x_train: expected a numpy array"),
])
def test_own_data_is_checked_in_one_line(change, config, message):
    data = change(own_arrays())
    if message is None:
        assert as_tensor_data(data, config).image_shape == (1, 12, 1)
        return
    with pytest.raises(ConfigError) as err:
        as_tensor_data(data, config)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_own_datasets_with_bad_items_are_refused():
    from torch.utils.data import Dataset

    class Triples(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(4), 0, "extra"

    with pytest.raises(ConfigError, match="the train Dataset: its items must be"):
        as_tensor_data((Triples(), Triples()), SYNTHETIC)
