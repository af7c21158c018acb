"""Datasets as whole device tensors: torchvision-backed images, a local mirror, a synthetic task.

A dataset is small enough to live on the device as one tensor per split, so training batches are
index slices (no DataLoader, no per-sample Python). Images are flattened in channel-first order,
the layout `ToTensor()` + `flatten` gives, with pixels scaled to [0, 1]. Your own arrays or torch
Datasets become the same `TensorData` through `as_tensor_data`, which checks them.

The rooms: `tensors` (TensorData, your own data checked, the synthetic task), `folder` (the data
folder: datasets made ready and checked, a lock per dataset, mirrors installed), `staging`
(files written whole: temporary name, check, rename), `integrity` (what each file must be, and
the errors naming one that is missing or damaged). This module loads a dataset by name.
"""

from __future__ import annotations

import dataclasses

import torch

from ..config import DATASETS
from .folder import (_open_torchvision, available_datasets, dataset_lock, install_mirror,
                     prepare_dataset, resolve_data_dir)
from .integrity import (_IDX_SIZES, _TORCHVISION, DataIntegrityError, DataNotFoundError,
                        verify_file)
from .tensors import TensorData, _synthetic_teacher, as_tensor_data

__all__ = ["DATASET_NAMES", "TensorData", "load_data", "run_data", "as_tensor_data",
           "prepare_dataset", "install_mirror", "available_datasets", "resolve_data_dir",
           "dataset_lock", "verify_file", "DataNotFoundError", "DataIntegrityError",
           "_IDX_SIZES"]


DATASET_NAMES = DATASETS  # the datasets load_data knows


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


def _load_torchvision(name, root, download, subset, device) -> TensorData:
    _, _, image_shape, n_classes = _TORCHVISION[name]
    prepare_dataset(name, root, download=download)
    train = _open_torchvision(name, root, True)
    test = _open_torchvision(name, root, False)
    x_train, y_train = _dataset_tensors(train, subset, device)
    x_test, y_test = _dataset_tensors(test, None, device)
    return TensorData(name, x_train, y_train, x_test, y_test, image_shape, n_classes)


def _dataset_tensors(ds, subset, device):
    """(x, y) from a torchvision dataset's raw arrays: x (N, d) float32 in [0, 1], y (N,) int64."""
    x = torch.as_tensor(ds.data)[:subset]  # uint8 (N, H, W) or CIFAR's (N, H, W, C)
    if x.ndim == 4:
        x = x.permute(0, 3, 1, 2)  # (N, C, H, W): the order ToTensor gives
    # Move the uint8 pixels first: a quarter of the float32 traffic to the device.
    x = x.to(device).reshape(len(x), -1).float().div_(255)  # (N, d)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)[:subset].to(device)  # (N,)
    return x, y
