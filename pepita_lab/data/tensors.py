"""A dataset as tensors (`TensorData`), your own arrays or torch Datasets checked into one
(`as_tensor_data`), and the synthetic teacher task."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..config import IMAGE_SHAPES, N_CLASSES, ConfigError
from .integrity import _summary


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
