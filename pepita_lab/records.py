"""Run records as xarray datasets, and the run store on disk (netCDF, atomic writes).

Conventions (xarray's data model): measured things are data variables; a run's
hyperparameters are coordinates along a `run` dimension of length 1, so runs concatenate with
`xr.concat(..., dim="run")` and group by any setting; attributes hold strings and numbers only.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__
from .config import IDENTITY_FIELDS, ConfigError, RunConfig, field_join, field_kind
from .files import atomic_write_bytes, publish

class DamagedFileError(ConfigError):
    """A file of a run or sweep folder that cannot be read back (truncated, altered)."""


# Settings that become coordinates along `run`: every field that changes what a run computes
# (the rest, such as the device, stay in the JSON config attribute).
RUN_COORDS = IDENTITY_FIELDS

VARIABLE_ATTRS = {
    "epoch_lr": ("1", "learning rate used during the epoch (after lr decays)"),
    "train_loss": ("nats", "mean cross-entropy of the training batches during the epoch "
                   "(with dropout, weights changing); NaN at epoch 0"),
    "train_acc": ("1", "fraction of training samples classified correctly during the epoch"),
    "test_loss": ("nats", "mean cross-entropy on the test set after the epoch"),
    "test_acc": ("1", "fraction of the test set classified correctly after the epoch"),
    "epoch_time": ("s", "wall time of the epoch, evaluation included"),
    "weight_norm": ("1", "Frobenius norm of W_l"),
    "update_norm": ("1", "Frobenius norm of the rule's update dW_l on the probe batch"),
    "bp_cosine": ("1", "cosine between the rule's dW_l and the BP gradient on the probe batch"),
    "bp_angle": ("degree", "angle between the rule's dW_l and the BP gradient on the probe batch"),
    "feedback_angle": ("degree", "angle between feedback matrix B_l and the forward map it "
                       "stands in for (FA: W_{l+1}; DFA/DRTP: W_L...W_{l+1}); NaN if none"),
    "mirror_angle": ("degree", "angle between the factor B_l of a factorised F = B_1...B_L "
                     "and W_l^T (weight mirroring drives it down); NaN without factors"),
    "implied_angle": ("degree", "PEPITA as adaptive feedback alignment: angle between its "
                      "implied feedback -sign W_l...W_1 F and BP's (W_L...W_{l+1})^T; NaN "
                      "for the output layer, conv nets and rules without F"),
    "f_angle": ("degree", "angle between vec((W_L...W_1)^T) and vec(F); NaN for conv nets "
                "(no end-to-end matrix)"),
    "probe_loss": ("nats", "mean cross-entropy on the probe batch (no dropout)"),
    "probe_acc": ("1", "accuracy on the probe batch (no dropout)"),
    "h": ("1", "hidden activation h_l of the clean pass on a probe test sample (a conv "
          "layer: its map before pooling, flattened channel-first)"),
    "h_diff": ("1", "h_l - h_l^err: clean minus modulated-pass activation (PEPITA's signal)"),
    "x_err": ("1", "modulated input x + sign F e, image-shaped"),
    "x": ("1", "clean input x, image-shaped"),
    "error": ("1", "first-pass output error e = softmax - one-hot target"),
}
LAYER_TRACES = ("weight_norm", "update_norm", "bp_cosine", "bp_angle", "feedback_angle",
                "mirror_angle", "implied_angle")
SCALAR_TRACES = ("f_angle", "probe_loss", "probe_acc")


def _attrs(name: str) -> dict:
    base = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
    base = base.removeprefix("step_")
    units, desc = VARIABLE_ATTRS.get(base, ("", name))
    return {"units": units, "description": desc}


@functools.lru_cache(maxsize=1)
def git_revision() -> str:
    """The package checkout's git revision, or "unknown" outside a checkout: read once, when
    the package is imported, so a long run records the code it started with even if the
    checkout moves on while it trains."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_id(config: RunConfig) -> str:
    """A readable, unique name: the main settings, then a short hash of every setting that
    changes the run (so runs differing only in, say, the modulation sign get different ids)."""
    import hashlib

    arch = "h" + "x".join(map(str, config.hidden))
    if config.model == "conv":  # e.g. c32k5p2 for 32 filters 5x5, max-pool 2
        conv = "x".join(map(str, config.conv_channels))
        arch = f"c{conv}k{config.kernel_size}p{config.pool}" + (f"-{arch}" if config.hidden else "")
    digest = hashlib.sha1(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()[:6]
    return (f"{config.rule}-{config.dataset}-{arch}-f{config.f_scale:g}-lr{config.lr:g}"
            f"-s{config.seed}-{digest}")


def coord_value(config: RunConfig, name: str):
    """Field `name` of `config` as a netCDF coordinate value: tuples as text (widths
    `1024x512`, milestones `60,90`), booleans as 0 / 1, an unset `subset` as 0 (every
    sample)."""
    v = getattr(config, name)
    if isinstance(v, tuple):
        sep = field_join(name)
        return sep.join(map(str, v))
    if isinstance(v, bool):
        return int(v)
    if v is None:
        return 0 if field_kind(name) == "int?" else ""
    return v


def run_coords(config: RunConfig) -> dict:
    """The run's hyperparameters as coordinates along a length-1 `run` dimension."""
    coords = {"run": ("run", [run_id(config)])}
    for k in RUN_COORDS:
        coords[k] = ("run", [coord_value(config, k)])
    coords["depth"] = ("run", [config.n_layers - 1])  # hidden layers, conv ones included
    return coords


def with_run_coords(ds: xr.Dataset, config: RunConfig) -> xr.Dataset:
    """`ds` with any run coordinate it lacks (files written before that coordinate existed,
    e.g. `model`) added from `config`, so old and new runs concatenate."""
    missing = {k: v for k, v in run_coords(config).items() if k not in ds.coords}
    return ds.assign_coords(missing) if missing else ds


git_revision()  # at import: see its docstring


def run_attrs(config: RunConfig, **extra) -> dict:
    """netCDF-safe attributes: the full config as JSON, versions, and `extra` scalars."""
    attrs = {"config": config.to_json(), "pepita_lab_version": __version__,
             "git_revision": git_revision()}
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


def history_dataset(config: RunConfig, epochs: list[int], values: dict[str, list[float]],
                    tracer=None, **attrs) -> xr.Dataset:
    """The history of one run: per-epoch scalars over (run, epoch); with a `Tracer`, per-layer
    traces over (run, epoch, layer) and, if it traced steps, `step_*` variables over step."""
    data_vars = {name: (("run", "epoch"), np.asarray([series], dtype=np.float64), _attrs(name))
                 for name, series in values.items()}
    coords = {"epoch": ("epoch", np.asarray(epochs, dtype=np.int64))}
    if tracer is not None and tracer.epochs:
        data_vars.update(_trace_vars(tracer.epoch_traces, tracer.epochs, epochs, "epoch", ""))
        L = config.n_layers
        coords["layer"] = ("layer", np.arange(1, L + 1),
                           {"description": "layer l of W_l (1 = first hidden, conv layers "
                                           "first; L = output)"})
    if tracer is not None and tracer.steps:
        data_vars.update(_trace_vars(tracer.step_traces, tracer.steps, tracer.steps, "step",
                                     "step_"))
        coords["step"] = ("step", np.asarray(tracer.steps, dtype=np.int64),
                          {"description": "training steps completed"})
    coords.update(run_coords(config))
    return xr.Dataset(data_vars, coords=coords, attrs=run_attrs(config, **attrs))


def _trace_vars(traces: list[dict], at: list[int], index: list[int], dim: str,
                prefix: str) -> dict:
    """Trace lists as variables over `dim`, aligned to `index` (NaN where not traced)."""
    pos = {k: i for i, k in enumerate(index)}
    rows = [pos[k] for k in at if k in pos]
    kept = [t for k, t in zip(at, traces) if k in pos]
    out = {}
    for name in LAYER_TRACES + SCALAR_TRACES:
        sample = np.asarray(kept[0][name], dtype=np.float64)
        arr = np.full((len(index),) + sample.shape, np.nan)
        arr[rows] = [t[name] for t in kept]
        dims = ("run", dim, "layer") if name in LAYER_TRACES else ("run", dim)
        out[prefix + name] = (dims, arr[None], _attrs(name))
    return out


def activations_dataset(config: RunConfig, tracer, image_shape: tuple[int, int, int],
                        **attrs) -> xr.Dataset:
    """Activation snapshots of one run: `h_l`, `h_diff_l` over (run, epoch, sample, unit_l),
    modulated inputs `x_err` over (run, epoch, sample, height, width, channel)."""
    epochs = sorted(tracer.snapshots)
    snaps = [tracer.snapshots[e] for e in epochs]
    C, H, W = image_shape
    samples = tracer.sample_arrays()
    n = len(samples["label"])

    def image(a):  # (..., C*H*W) channel-first -> (..., H, W, C)
        a = np.asarray(a)
        return np.moveaxis(a.reshape(a.shape[:-1] + (C, H, W)), -3, -1)

    data_vars = {
        "x": (("run", "sample", "height", "width", "channel"), image(samples["x"])[None],
              _attrs("x")),
        "x_err": (("run", "epoch", "sample", "height", "width", "channel"),
                  np.stack([image(s["x_err"]) for s in snaps])[None], _attrs("x_err")),
        "error": (("run", "epoch", "sample", "class"),
                  np.stack([np.asarray(s["error"]) for s in snaps])[None],
                  _attrs("error")),
    }
    coords = {"epoch": ("epoch", np.asarray(epochs, dtype=np.int64)),
              "sample": ("sample", np.arange(n)),
              "label": ("sample", samples["label"].astype(np.int64))}
    for l in range(len(snaps[0]["h"])):
        unit = f"unit_{l + 1}"
        coords[unit] = (unit, np.arange(snaps[0]["h"][l].shape[-1]))
        for key in ("h", "h_diff"):
            values = np.stack([np.asarray(s[key][l]) for s in snaps])[None]  # (1, E, n, units)
            data_vars[f"{key}_{l + 1}"] = (("run", "epoch", "sample", unit),
                                           values.astype(np.float32), _attrs(f"{key}_{l + 1}"))
    coords.update(run_coords(config))
    return xr.Dataset(data_vars, coords=coords, attrs=run_attrs(config, **attrs))


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """`ds.to_netcdf(path)`, atomically (written beside, then renamed over). Encodings that
    came with data read from other files are dropped: a text coordinate concatenated from
    runs keeps the first file's width otherwise ("gaussian" written as "gaussia")."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.drop_encoding().to_netcdf(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(obj, path: Path) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_netcdf(path: Path) -> xr.Dataset:
    """Load a dataset fully into memory (the file is closed on return); a file that is not
    a readable netCDF file raises `DamagedFileError` naming it."""
    try:
        with xr.open_dataset(path) as ds:
            return ds.load()
    except FileNotFoundError:
        raise
    except Exception as err:  # HDF / netCDF errors of truncated or altered files
        raise DamagedFileError(f"{path} is damaged or not a netCDF file "
                               f"({type(err).__name__}: {err})") from None


def activation_differences(net, config: RunConfig, x, y) -> xr.Dataset:
    """PEPITA's two passes (no dropout) on the samples `x` you give (images or flat vectors,
    an array or a tensor) with labels `y`: per hidden layer `h_l` and the difference
    `h_diff_l` = h_l - h_l^err over (sample, unit_l), the modulated input `x_err` and the
    first pass's `error`, as the run's activation snapshots hold them (without their run and
    epoch dimensions); coordinates sample, label, unit_l. `net`: a run's (`Run.net`)."""
    import torch

    from .traces import activation_snapshot

    device = net.weights[0].device
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    x = x.to(device=device, dtype=torch.float32).reshape(len(x), -1)
    labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).astype(np.int64)
    if labels.shape != (len(x),):
        raise ConfigError(f"y (shape {labels.shape}) is not allowed: expected one label per "
                          f"sample of x ({len(x)})")
    n_classes = net.weights[-1].shape[-2]
    target = torch.eye(n_classes, device=device)[torch.as_tensor(labels, device=device)]
    snap = activation_snapshot(net, x, target, config.sign, normalize=config.normalize)
    n = len(labels)
    data_vars = {"error": (("sample", "class"), snap["error"].numpy(), _attrs("error"))}
    shape = net.image_shape or (1, 1, x.shape[-1])
    if int(np.prod(shape)) == snap["x_err"].shape[-1]:
        C, H, W = shape
        image = np.moveaxis(snap["x_err"].numpy().reshape(n, C, H, W), 1, -1)
        data_vars["x_err"] = (("sample", "height", "width", "channel"), image, _attrs("x_err"))
    coords = {"sample": ("sample", np.arange(n)), "label": ("sample", labels)}
    for l, (h, d) in enumerate(zip(snap["h"], snap["h_diff"])):
        unit = f"unit_{l + 1}"
        coords[unit] = (unit, np.arange(h.shape[-1]))
        data_vars[f"h_{l + 1}"] = (("sample", unit), h.numpy(), _attrs(f"h_{l + 1}"))
        data_vars[f"h_diff_{l + 1}"] = (("sample", unit), d.numpy(), _attrs(f"h_diff_{l + 1}"))
    return xr.Dataset(data_vars, coords=coords, attrs=run_attrs(config))
