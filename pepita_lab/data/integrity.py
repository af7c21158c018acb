"""What a dataset's files must be: the IDX files' sizes and md5s, torchvision's tables, and
the errors that name a missing or damaged file."""

from __future__ import annotations

import pathlib

from ..config import IMAGE_SHAPES, N_CLASSES


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


def _summary(err) -> str:
    """torchvision's error on one line (its download error spans one line per mirror)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:3]) or type(err).__name__
