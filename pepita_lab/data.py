"""Datasets as whole device tensors: torchvision-backed images, a local mirror, a synthetic task.

A dataset is small enough to live on the device as one tensor per split, so training batches are
index slices (no DataLoader, no per-sample Python). Images are flattened in channel-first order,
the layout `ToTensor()` + `flatten` gives, with pixels scaled to [0, 1]. Your own arrays or torch
Datasets become the same `TensorData` through `as_tensor_data`, which checks them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gzip
import hashlib
import math
import os
import pathlib
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass

import torch

from .config import DATASETS, IMAGE_SHAPES, N_CLASSES, ConfigError
from .files import publish

DATASET_NAMES = DATASETS  # the datasets load_data knows

# name -> (torchvision class, subfolder of the root it reads, image shape (C, H, W), classes)
_TORCHVISION = {
    name: (cls, folder, IMAGE_SHAPES[name], N_CLASSES[name]) for name, cls, folder in (
        ("mnist", "MNIST", "MNIST/raw"), ("fashion-mnist", "FashionMNIST", "FashionMNIST/raw"),
        ("cifar10", "CIFAR10", "cifar-10-batches-py"),
        ("cifar100", "CIFAR100", "cifar-100-python"))}
_MIRROR_GZ_FOLDERS = ("MNIST", "FashionMNIST")  # <Name>/raw/*.gz, decompressed on install
_MIRROR_TREES = ("cifar-10-batches-py", "cifar-100-python")  # copied as they are
# the dataset whose files a data folder's top-level folder holds (the lock it takes)
_DATASET_OF_FOLDER = {folder.split("/")[0]: name for name, (_, folder, _, _) in
                      _TORCHVISION.items()}
_HOW_TO_FILL = (
    "run `pepita-lab data --mirror PATH` or pass --data-dir (or set PEPITA_LAB_DATA), "
    "or connect to the internet so torchvision can download"
)


class DataNotFoundError(RuntimeError):
    """The files of a dataset are not in the data folder and could not be fetched."""


class DataIntegrityError(DataNotFoundError):
    """A dataset file is there but damaged: wrong size or checksum."""


# Decompressed IDX files: (size in bytes, md5). MNIST's are those of the official files;
# Fashion-MNIST's are the upstream files' (also what ../shared/datasets/README.md lists).
_IDX_SIZES = {"train-images-idx3-ubyte": 47040016, "train-labels-idx1-ubyte": 60008,
              "t10k-images-idx3-ubyte": 7840016, "t10k-labels-idx1-ubyte": 10008}
_IDX_MD5 = {
    "MNIST": {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
              "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
              "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
              "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"},
    "FashionMNIST": {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                     "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                     "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                     "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
}
_VERIFIED: dict[tuple, bool] = {}  # (path, size, mtime) -> checked, so a process hashes once


def verify_file(path: pathlib.Path, size: int | None, md5: str | None) -> None:
    """DataIntegrityError naming `path` unless it has the expected size and md5."""
    from torchvision.datasets.utils import calculate_md5  # a second of import: not at the top

    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key):
        return
    how = ("delete it and fill the folder again (`pepita-lab data --mirror PATH`, or let "
           "torchvision download it)")
    if size is not None and st.st_size != size:
        raise DataIntegrityError(f"{path} is damaged: {st.st_size} bytes, expected {size}; "
                                 f"{how}")
    if md5 is not None and (digest := calculate_md5(path)) != md5:
        raise DataIntegrityError(f"{path} is damaged: md5 {digest}, expected {md5}; {how}")
    _VERIFIED[key] = True


def _expected_files(name: str, root: pathlib.Path, cls) -> dict[pathlib.Path, tuple]:
    """The files dataset `name` reads, each with its (size or None, md5): MNIST-likes' IDX
    files, CIFAR's batches with torchvision's md5s."""
    folder = root / _TORCHVISION[name][1]
    if name in ("mnist", "fashion-mnist"):
        md5s = _IDX_MD5[_TORCHVISION[name][0]]
        return {folder / f: (size, md5s[f]) for f, size in _IDX_SIZES.items()}
    files = list(cls.train_list) + list(cls.test_list) + [[cls.meta["filename"],
                                                           cls.meta["md5"]]]
    return {folder / f: (None, md5) for f, md5 in files}


def _verify_dataset(name: str, root: pathlib.Path, cls) -> None:
    """Check the files a dataset reads, where they exist (missing ones are `_fill`'s to make):
    IDX sizes and md5s, CIFAR batches against torchvision's md5s."""
    for path, (size, md5) in _expected_files(name, root, cls).items():
        if path.is_file():
            verify_file(path, size, md5)


def _complete(name: str, root: pathlib.Path, cls) -> bool:
    return all(path.is_file() for path in _expected_files(name, root, cls))


@dataclass
class TensorData:
    """Both splits of a dataset as tensors on one device."""

    name: str
    x_train: torch.Tensor  # (N, d) float32 in [0, 1]
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor  # (M, d)
    y_test: torch.Tensor  # (M,)
    image_shape: tuple[int, int, int]  # (C, H, W); synthetic: (1, 1, d)
    n_classes: int

    @property
    def n_features(self) -> int:
        """Input size d of a flattened sample."""
        return self.x_train.shape[1]

    def to(self, device) -> "TensorData":
        """A copy with all four tensors on `device`."""
        moved = {f: getattr(self, f).to(device) for f in ("x_train", "y_train", "x_test", "y_test")}
        return dataclasses.replace(self, **moved)


def available_datasets(data_dir=None) -> list[str]:
    """The image datasets whose folder exists in the data folder (not checked further)."""
    root = resolve_data_dir(data_dir)
    return [name for name, (_, folder, _, _) in _TORCHVISION.items() if (root / folder).is_dir()]


def resolve_data_dir(data_dir=None) -> pathlib.Path:
    """The data folder: `data_dir` if given, else $PEPITA_LAB_DATA, else ./data (absolute path)."""
    chosen = data_dir if data_dir is not None else os.environ.get("PEPITA_LAB_DATA") or "data"
    return pathlib.Path(chosen).expanduser().absolute()


def load_data(
    name, *, data_dir=None, subset=None, device="cpu", download=True, seed=0,
    synthetic_size=(5000, 1000), synthetic_features=32, synthetic_classes=10,
) -> TensorData:
    """Load dataset `name` (one of DATASET_NAMES) as tensors on `device`.

    Image datasets come from torchvision under `resolve_data_dir(data_dir)`; if their files are
    missing they are downloaded when `download` is true, else DataNotFoundError is raised.
    `subset` keeps the first `subset` training samples; the test split stays whole.
    "synthetic" needs no files: Gaussian inputs (synthetic_size = (n_train, n_test) samples of
    `synthetic_features`) labelled by a random tanh teacher net, the same for the same `seed`.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}")
    if subset is not None and (type(subset) is not int or subset < 1):  # bool is an int too
        raise ValueError(f"subset must be an int >= 1 or None, got {subset!r}")
    if name != "synthetic":
        return _load_torchvision(name, resolve_data_dir(data_dir), download, subset, device)
    data = _synthetic_teacher(*synthetic_size, synthetic_features, synthetic_classes, seed)
    data = dataclasses.replace(data, x_train=data.x_train[:subset], y_train=data.y_train[:subset])
    return data.to(device)


def run_data(config, device) -> TensorData:
    """The data a run of `config` (RunConfig) trains on: its dataset, subset, data folder and
    download setting, on `device`."""
    return load_data(config.dataset, data_dir=config.data_dir, subset=config.subset,
                     device=device, download=config.download)


def as_tensor_data(data, config) -> TensorData:
    """Your own data as the `TensorData` a run of `config` trains on (on the CPU: the loop
    moves it to its device).

    `data` is a `TensorData` (returned unchanged), a tuple `(x_train, y_train, x_test,
    y_test)` of numpy arrays or torch tensors, or a pair `(train, test)` of torch Datasets whose
    items are `(x, y)` (read once, in order). Features are (N, d) vectors, (N, H, W) grey
    images or (N, C, H, W) images (channels first); float, or uint8 pixels, which are scaled to
    [0, 1] like the built-in datasets. Labels are (N,) integer class indices in
    [0, n_classes): n_classes is the config's dataset's (10 for MNIST, 100 for CIFAR-100), or
    for `dataset="synthetic"` the largest label + 1. `config.subset` keeps the first training
    samples. A conv model needs images, or vectors as long as the config dataset's images.
    Anything else is a ConfigError of one line naming the array and what is wrong.
    """
    if isinstance(data, TensorData):
        return data
    from torch.utils.data import Dataset

    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
            isinstance(d, Dataset) for d in data):
        (x_train, y_train), (x_test, y_test) = (_dataset_tensors_of(d, name) for d, name in
                                                zip(data, ("the train Dataset",
                                                           "the test Dataset")))
    elif isinstance(data, (tuple, list)) and len(data) == 4:
        x_train, y_train, x_test, y_test = (_tensor(v, name) for v, name in zip(
            data, ("x_train", "y_train", "x_test", "y_test")))
    else:
        raise ConfigError(f"data={type(data).__name__}: expected (x_train, y_train, x_test, "
                          "y_test) arrays or tensors, a (train, test) pair of torch Datasets, "
                          "or a TensorData")
    x_train, shape = _features(x_train, "x_train")
    x_test, test_shape = _features(x_test, "x_test")
    train_sample, test_sample = shape or (x_train.shape[1],), test_shape or (x_test.shape[1],)
    if train_sample != test_sample:
        raise ConfigError(f"x_test has samples of shape {test_sample} but x_train has "
                          f"{train_sample}: both splits need the same")
    image_shape = shape or _image_shape_of_vectors(x_train.shape[1], config)
    y_train = _labels(y_train, "y_train", len(x_train), "x_train")
    y_test = _labels(y_test, "y_test", len(x_test), "x_test")
    n_classes = _n_classes(y_train, y_test, config)
    return TensorData("custom", x_train[:config.subset], y_train[:config.subset], x_test,
                      y_test, image_shape, n_classes)


def _n_classes(y_train: torch.Tensor, y_test: torch.Tensor, config) -> int:
    """The config dataset's classes (the largest label + 1 for "synthetic"), labels checked."""
    if config.dataset == "synthetic":
        n = max(int(y_train.max()), int(y_test.max()), 1) + 1
        why = "dataset='synthetic' counts them from the labels"
    else:
        n = N_CLASSES[config.dataset]
        why = (f"dataset={config.dataset!r} has {n} classes; dataset='synthetic' counts them "
               "from the labels")
    for y, name in ((y_train, "y_train"), (y_test, "y_test")):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n:
            raise ConfigError(f"{name} holds label {lo if lo < 0 else hi}: labels must be in "
                              f"[0, {n}) ({why})")
    return n


def _tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"{name}: expected a numpy array or a torch tensor, got "
                          f"{type(value).__name__} ({_summary(err)})") from None


def _dataset_tensors_of(ds, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) stacked from a torch Dataset's `(x, y)` items (read once, outside training)."""
    from torch.utils.data import DataLoader

    xs, ys = [], []
    try:
        for x, y in DataLoader(ds, batch_size=1024):  # collates tensors, arrays and numbers
            xs.append(x), ys.append(y)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"{name}: its items must be (x, y) pairs of tensors, arrays or "
                          f"numbers (PIL images: add transform=ToTensor()); {_summary(err)}"
                          ) from None
    if not xs:
        raise ConfigError(f"{name} is empty: expected at least one sample")
    return torch.cat(xs), torch.cat(ys)


def _features(x: torch.Tensor, name: str) -> tuple[torch.Tensor, tuple | None]:
    """x as (N, d) float32 and its image shape (C, H, W), None for vectors."""
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and min(x.shape[1:3]) > 4:  # (N, H, W, C)
        raise ConfigError(f"{name} has shape {tuple(x.shape)}, channels last: pass images as "
                          f"(N, C, H, W), e.g. {name}.transpose(0, 3, 1, 2) (numpy) or "
                          f"{name}.permute(0, 3, 1, 2) (torch)")
    if x.ndim not in (2, 3, 4):
        raise ConfigError(f"{name} has shape {tuple(x.shape)}: expected (N, d) features, "
                          "(N, H, W) or (N, C, H, W) images")
    if len(x) == 0:
        raise ConfigError(f"{name} is empty: expected at least one sample")
    if x.dtype == torch.bool or x.is_complex():
        raise ConfigError(f"{name} holds {x.dtype} values: expected numbers (float, or uint8 "
                          "pixels)")
    shape = None if x.ndim == 2 else ((1, *x.shape[1:]) if x.ndim == 3 else tuple(x.shape[1:]))
    flat = x.reshape(len(x), -1)
    flat = flat.float().div_(255) if x.dtype == torch.uint8 else flat.float()
    if not torch.isfinite(flat).all():
        n = int((~torch.isfinite(flat)).sum())
        raise ConfigError(f"{name} holds {n} NaN or infinite values: expected finite features")
    return flat.contiguous(), None if shape is None else tuple(int(v) for v in shape)


def _image_shape_of_vectors(d: int, config) -> tuple[int, int, int]:
    """The image shape of (N, d) vectors: the config dataset's when it has d values (flattened
    images), else (1, 1, d); a conv model needs the former."""
    shape = IMAGE_SHAPES[config.dataset]
    if config.dataset != "synthetic" and math.prod(shape) == d:
        return shape
    if config.model == "conv":
        flat = ("" if config.dataset == "synthetic" else f", or vectors of dataset="
                f"{config.dataset!r}'s {'x'.join(map(str, shape))} = {math.prod(shape)} values")
        raise ConfigError(f"model='conv' needs images: x_train has {d} features per sample; "
                          f"pass images as (N, C, H, W){flat}")
    return (1, 1, d)


def _labels(y: torch.Tensor, name: str, n: int, x_name: str) -> torch.Tensor:
    """y as (N,) int64 class indices (range checked by the caller)."""
    if y.ndim == 2 and y.shape[1] > 1:
        raise ConfigError(f"{name} has shape {tuple(y.shape)}: expected (N,) class indices "
                          f"(one-hot labels: pass {name}.argmax(1))")
    if y.ndim != 1:
        raise ConfigError(f"{name} has shape {tuple(y.shape)}: expected (N,) class indices")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise ConfigError(f"{name} holds {y.dtype} values: labels must be integer class "
                          f"indices (e.g. {name}.astype('int64'))")
    if len(y) != n:
        raise ConfigError(f"{x_name} has {n} samples but {name} has {len(y)} labels: "
                          "they must match")
    return y.long()


def _synthetic_teacher(n_train, n_test, n_features, n_classes, seed=0) -> TensorData:
    """Gaussian inputs labelled by a random tanh teacher net (64 hidden units), on the CPU.

    Everything is drawn from one generator seeded with `seed`, so the task is the same on every
    machine; train and test share the teacher.
    """
    gen = torch.Generator().manual_seed(seed)
    w_hidden = torch.randn(n_features, 64, generator=gen) / n_features**0.5  # (d, 64)
    w_out = torch.randn(64, n_classes, generator=gen) / 8.0  # (64, k)
    x = torch.randn(n_train + n_test, n_features, generator=gen)  # (n, d)
    logits = torch.tanh(x @ w_hidden) @ w_out  # (n, k)
    # A raw random teacher lets a few classes win almost everywhere; standardising each logit
    # over the drawn inputs (part of the teacher, fixed by the seed) gives every class a share.
    logits = (logits - logits.mean(0)) / logits.std(0)
    y = logits.argmax(1)  # (n,)
    return TensorData("synthetic", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                      (1, 1, n_features), n_classes)


def _load_torchvision(name, root, download, subset, device) -> TensorData:
    _, _, image_shape, n_classes = _TORCHVISION[name]
    prepare_dataset(name, root, download=download)
    train = _open_torchvision(name, root, True)
    test = _open_torchvision(name, root, False)
    x_train, y_train = _dataset_tensors(train, subset, device)
    x_test, y_test = _dataset_tensors(test, None, device)
    return TensorData(name, x_train, y_train, x_test, y_test, image_shape, n_classes)


def _torchvision_class(name: str):
    import torchvision.datasets  # here, not at the top: a second of import the synthetic task skips

    return getattr(torchvision.datasets, _TORCHVISION[name][0])


def prepare_dataset(name, data_dir=None, *, download=True) -> pathlib.Path:
    """Make the files image dataset `name` reads ready in the data folder (`data_dir`, see
    `resolve_data_dir`), whole and checked; return the folder.

    Files already there are checked (sizes and md5s) and never replaced: a damaged one is a
    DataIntegrityError naming it. Missing files are made from the archives in the folder
    (MNIST's `raw/*.gz`, the CIFAR archive), else downloaded when `download` is true, else
    DataNotFoundError names the folder. Safe from many processes at once: the dataset's lock
    (`flock` on `<data folder>/.<name>.lock`) is held while files are made and checked, and
    every file is written under a temporary name and renamed into place once complete, so a
    process finds whole files or waits for them; a process that finds every file there checks
    them without waiting.
    """
    if name not in _TORCHVISION:
        raise ValueError(f"{name!r} is not an image dataset; allowed: {', '.join(_TORCHVISION)}")
    root, cls = resolve_data_dir(data_dir), _torchvision_class(name)
    if _complete(name, root, cls):  # files only ever appear whole: check them at once
        _verify_dataset(name, root, cls)
        return root
    if not download and not _archives_here(name, root, cls):  # looking creates nothing
        _verify_dataset(name, root, cls)
        raise _not_found(name, root, cls, "downloading is off")
    with dataset_lock(root, name):
        _verify_dataset(name, root, cls)  # damaged files: a clear error, never wrong data
        if not _complete(name, root, cls):  # another process may have filled it meanwhile
            _fill(name, root, cls, download)
            _verify_dataset(name, root, cls)
    return root


@contextlib.contextmanager
def dataset_lock(root: pathlib.Path, name: str):
    """Hold dataset `name`'s lock in data folder `root` (`root/.<name>.lock`, made with the
    folder if missing), waiting for another process that holds it. A folder where no lock file
    can be made (read-only) is used without one: no process writes there either."""
    from . import locks

    root.mkdir(parents=True, exist_ok=True)
    try:
        lock = locks.acquire(root / f".{name}.lock")
    except OSError as err:
        if not isinstance(err, PermissionError) and err.errno != errno.EROFS:
            raise
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            locks.release(lock)


def _archives_here(name: str, root: pathlib.Path, cls) -> bool:
    """Whether every missing file can be made from an archive in the data folder."""
    if name in ("mnist", "fashion-mnist"):
        return all(path.is_file() or path.with_name(path.name + ".gz").is_file()
                   for path in _expected_files(name, root, cls))
    return all(path.is_file() for path, _ in _torchvision_files(name, root, cls))


def _fill(name: str, root: pathlib.Path, cls, download: bool) -> None:
    """Make the missing files of a dataset (its lock held): MNIST-likes' from the `.gz`
    files there (decompressed, checked, then renamed into place), the rest by torchvision
    from its archives there or downloaded, in a temporary folder, then renamed into place."""
    _remove_leftovers(root, name)
    if name in ("mnist", "fashion-mnist"):
        jobs = [(gz, gz.with_suffix(""), md5) for gz, md5 in _torchvision_files(name, root, cls)
                if gz.is_file() and not gz.with_suffix("").is_file()]
        _write_all([(lambda gz=gz, out=out, md5=md5: _stage_gunzip_checked(gz, out, md5))
                    for gz, out, md5 in jobs])
        if _complete(name, root, cls):
            return
    else:
        _check_torchvision_files(name, root, cls)  # an archive there but damaged: never
        # downloaded over
    if not download and not _archives_here(name, root, cls):
        raise _not_found(name, root, cls, "downloading is off")
    _fetch(name, root, cls)


def _stage_gunzip_checked(gz: pathlib.Path, out: pathlib.Path, md5: str):
    """`_stage_gunzip`; an archive that cannot be read or gives the wrong file is named
    against torchvision's md5 when it is not the official file."""
    try:
        return _stage_gunzip(gz, out)
    except DataIntegrityError:
        _check_torchvision_files_of([(gz, md5)])
        raise


def _fetch(name: str, root: pathlib.Path, cls) -> None:
    """torchvision's download (and extraction) into a temporary folder in the data folder
    (archives already there and intact are linked in, so only missing ones are downloaded);
    then every file not yet in place is renamed into it."""
    from torchvision.datasets.utils import calculate_md5

    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.part-", dir=root))
    try:
        for path, md5 in _torchvision_files(name, root, cls):
            if path.is_file() and calculate_md5(path) == md5:  # torchvision will not touch it
                target = tmp / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copyfile(path, target)
        try:
            cls(tmp, train=True, download=True)
        except Exception as err:  # offline: URLError (CIFAR), RuntimeError naming mirrors
            raise _not_found(name, root, cls, f"download failed: {_summary(err)}") from None
        for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
            dest = root / src.relative_to(tmp)
            if not dest.exists():
                with open(src, "rb") as f:
                    os.fsync(f.fileno())
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_leftovers(root: pathlib.Path, name: str) -> None:
    """Remove what a process killed while filling dataset `name` left (its lock held, so no
    process is writing them): temporary folders and half-written files."""
    for tmp in root.glob(f".{name}.part-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    folder = root / _TORCHVISION[name][1]
    if folder.is_dir():
        for tmp in folder.glob(".*.part"):
            tmp.unlink(missing_ok=True)


def _not_found(name: str, root: pathlib.Path, cls, reason: str) -> DataNotFoundError:
    folder = root / _TORCHVISION[name][1]
    missing = [p.name for p in _expected_files(name, root, cls) if not p.is_file()]
    what = f"{missing[0]}{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}"
    err = DataNotFoundError(
        f"{name} not found in {folder} (data folder {root}; missing {what}; {reason}). To fill "
        f"it, {_HOW_TO_FILL}.")
    err.__suppress_context__ = True  # the message says it all; torchvision's would bury it
    return err


def _open_torchvision(name, root, train):
    """The torchvision dataset object of files `prepare_dataset` made ready."""
    cls = _torchvision_class(name)
    try:
        return cls(root, train=train, download=False)
    except Exception as err:  # torchvision says RuntimeError; a damaged file can raise others
        folder = root / _TORCHVISION[name][1]
        raise DataNotFoundError(
            f"{name} cannot be read from {folder} (torchvision: {_summary(err)}). To fill it "
            f"again, {_HOW_TO_FILL}.") from None


def _torchvision_files(name: str, root: pathlib.Path, cls) -> list[tuple[pathlib.Path, str]]:
    """The files torchvision checks with its own md5s before it reads or downloads: MNIST's
    compressed `raw/*.gz`, the CIFAR archive."""
    if name in ("mnist", "fashion-mnist"):
        raw = root / _TORCHVISION[name][1]
        return [(raw / url.rsplit("/", 1)[-1], md5) for url, md5 in cls.resources]
    return [(root / cls.filename, cls.tgz_md5)]


def _check_torchvision_files(name: str, root: pathlib.Path, cls) -> None:
    """DataIntegrityError for a file that is there but fails torchvision's md5 check, which
    torchvision itself reports as "not found" (and then tries to download over it)."""
    _check_torchvision_files_of(_torchvision_files(name, root, cls))


def _check_torchvision_files_of(files) -> None:
    from torchvision.datasets.utils import calculate_md5

    for path, md5 in files:
        if path.is_file() and (digest := calculate_md5(path)) != md5:
            raise DataIntegrityError(
                f"{path} exists but fails torchvision's md5 check (md5 {digest}, expected "
                f"{md5}): it is damaged or not the official file; delete it and fill the "
                "folder again (`pepita-lab data --mirror PATH`, or let torchvision download it)")


def _summary(err) -> str:
    """torchvision's error on one line (its download error spans one line per mirror)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:3]) or type(err).__name__


def _dataset_tensors(ds, subset, device):
    """(x, y) from a torchvision dataset's raw arrays: x (N, d) float32 in [0, 1], y (N,) int64."""
    x = torch.as_tensor(ds.data)[:subset]  # uint8 (N, H, W) or CIFAR's (N, H, W, C)
    if x.ndim == 4:
        x = x.permute(0, 3, 1, 2)  # (N, C, H, W): the order ToTensor gives
    # Move the uint8 pixels first: a quarter of the float32 traffic to the device.
    x = x.to(device).reshape(len(x), -1).float().div_(255)  # (N, d)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)[:subset].to(device)  # (N,)
    return x, y


def install_mirror(src, dst=None) -> list[pathlib.Path]:
    """Fill data folder `dst` (default: `resolve_data_dir()`) from a mirror in torchvision's layout.

    MNIST/FashionMNIST `raw/*.gz` files are written decompressed, since that is what torchvision
    checks for before it would download; CIFAR folders are copied. Files already there with the
    right size are kept. Returns every file written or found. Each dataset's lock is held
    meanwhile (as by `prepare_dataset`) and every file is renamed into place once complete; a
    `.gz` that cannot be decompressed, or decompresses to the wrong file, is a
    DataIntegrityError naming it, and then no file is written.
    """
    src, dst = pathlib.Path(src).expanduser(), resolve_data_dir(dst)
    gz_files = {folder: sorted((src / folder / "raw").glob("*.gz"))
                for folder in _MIRROR_GZ_FOLDERS}
    trees = [folder for folder in _MIRROR_TREES if (src / folder).is_dir()]
    folders = [folder for folder, files in gz_files.items() if files] + trees
    if not folders:
        wanted = ", ".join([f"{f}/raw/*.gz" for f in _MIRROR_GZ_FOLDERS] + list(_MIRROR_TREES))
        raise DataNotFoundError(f"no dataset files in mirror {src} (looked for {wanted})")
    jobs, installed = [], []
    for folder, files in gz_files.items():
        for gz in files:
            out = dst / folder / "raw" / gz.stem
            jobs.append(lambda gz=gz, out=out: _stage_gunzip(gz, out))
            installed.append(out)
    for folder in trees:
        for file in sorted(p for p in (src / folder).rglob("*") if p.is_file()):
            out = dst / folder / file.relative_to(src / folder)
            jobs.append(lambda file=file, out=out: _stage_copy(file, out))
            installed.append(out)
    with contextlib.ExitStack() as held:  # always in this order: no two processes deadlock
        for folder in folders:
            held.enter_context(dataset_lock(dst, _DATASET_OF_FOLDER[folder]))
        _write_all(jobs)
    return installed


def _write_all(jobs) -> None:
    """Run `jobs`, each writing one file under a temporary name beside its destination and
    returning (temporary file, destination, whether its size and md5 were checked), or None
    when the destination is already right; then rename every temporary file into place. If a
    job fails, the temporary files go and nothing is written."""
    staged = []
    try:
        for job in jobs:
            if (done := job()) is not None:
                staged.append(done)
    except BaseException:
        for tmp, _, _ in staged:
            pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    for tmp, path, checked in staged:
        publish(tmp, path)
        if checked:  # checked while written: not hashed again by this process
            st = path.stat()
            _VERIFIED[(str(path), st.st_size, st.st_mtime_ns)] = True


@contextlib.contextmanager
def _temporary_beside(path: pathlib.Path):
    """A binary file open for writing under a temporary name in `path`'s folder (made if
    missing); yields (file, its name), fsynced on leaving; removed if an error leaves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _stage_gunzip(gz: pathlib.Path, out: pathlib.Path):
    """Decompress `gz` beside `out` (a job of `_write_all`): None if `out` is already there
    with the decompressed size; DataIntegrityError naming `gz` if it cannot be decompressed
    or, for the IDX files whose md5s are known, decompresses to another file."""
    how = "replace it with a good copy and run again"
    try:  # no library reads gzip's trailer: its last 4 bytes are the decompressed size
        with open(gz, "rb") as f:
            f.seek(-4, os.SEEK_END)
            size = struct.unpack("<I", f.read(4))[0]
    except OSError as err:
        if err.errno != errno.EINVAL:  # EINVAL: shorter than 4 bytes
            raise
        raise DataIntegrityError(f"{gz} is damaged: {os.path.getsize(gz)} bytes, not a gzip "
                                 f"file; {how}") from None
    if out.is_file() and out.stat().st_size == size:
        return None
    expected_size = _IDX_SIZES.get(out.name)
    expected_md5 = _IDX_MD5.get(out.parent.parent.name, {}).get(out.name)
    digest, n = hashlib.md5(), 0
    with _temporary_beside(out) as (f, tmp), gzip.open(gz, "rb") as source:
        while True:
            try:
                chunk = source.read(1 << 20)
            except (EOFError, zlib.error, gzip.BadGzipFile) as err:  # truncated or altered
                raise DataIntegrityError(f"{gz} is damaged: not a complete gzip file "
                                         f"({_summary(err)}); {how}") from None
            if not chunk:
                break
            f.write(chunk)
            digest.update(chunk)
            n += len(chunk)
    if (expected_size is not None and n != expected_size) or (
            expected_md5 is not None and digest.hexdigest() != expected_md5):
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise DataIntegrityError(f"{gz} is damaged: it decompresses to {n} bytes with md5 "
                                 f"{digest.hexdigest()}, expected {expected_size} bytes with "
                                 f"md5 {expected_md5} ({out.name}); {how}")
    return tmp, out, expected_md5 is not None


def _stage_copy(src: pathlib.Path, out: pathlib.Path):
    """Copy `src` beside `out` (a job of `_write_all`): None if `out` is already there with
    the same size (which also makes installing a folder onto itself harmless)."""
    if out.is_file() and out.stat().st_size == src.stat().st_size:
        return None
    with _temporary_beside(out) as (f, tmp), open(src, "rb") as source:
        shutil.copyfileobj(source, f)
    return tmp, out, False
