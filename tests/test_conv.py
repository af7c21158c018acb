"""Conv nets: oracle tests of the conv rules (a 1x1 conv on 1x1 images is the FC rule; the
batched conv update equals a loop over output positions written from the definition; conv BP
equals autograd), the training loop on conv nets, their records, and a short MNIST run."""

import contextlib
import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch.nn import functional as nnf

import pepita_lab as pl
from pepita_lab import kernels, rules
from pepita_lab.config import ConfigError, RunConfig, preset
from pepita_lab.data import TensorData
from pepita_lab.rules import (bp_factors, bp_updates, dfa_updates, drtp_updates, fa_updates,
                              pepita_updates, updates_from_factors)
from pepita_lab.rules.factors import bias_update
from pepita_lab.training import Trainer

pytestmark = pytest.mark.numerics

D = torch.float64
# image (2, 9, 9) -> conv 3 ch 3x3 -> (3, 7, 7) -> pool 2 -> (3, 3, 3) [a row and a column
# dropped] -> conv 4 ch 2x2 -> (4, 2, 2) -> pool 2 -> (4, 1, 1) -> FC 5 -> output 3
IMAGE, POOL = (2, 9, 9), 2
CONV = [(3, 2, 3, 3), (4, 3, 2, 2)]
FC = [(5, 4), (3, 5)]


def make_conv_problem(seed=0, B=4, masks=True):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(s, generator=g, dtype=D) * 0.6 for s in CONV + FC]
    x = torch.rand(B, *IMAGE, generator=g, dtype=D)
    C = FC[-1][0]
    target = nnf.one_hot(torch.randint(0, C, (B,), generator=g), C).double()
    F = torch.randn(math.prod(IMAGE), C, generator=g, dtype=D) * 0.5
    shapes = [(3, 7, 7), (4, 2, 2), (5,)]
    m = ([(torch.rand(B, *s, generator=g, dtype=D) < 0.7).double() / 0.7 for s in shapes]
         if masks else None)
    return weights, x, target, F, m


# ---------------------------------------------------------------- naive, per sample, per position

def naive_conv_relu(W, x):
    """One sample: h[c, i, j] = relu(sum over (c_in, u, v) of W[c, :, u, v] x[:, i+u, j+v])."""
    c_out, _, kh, kw = W.shape
    H, Wd = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    h = torch.zeros(c_out, H, Wd, dtype=D)
    for i in range(H):
        for j in range(Wd):
            patch = x[:, i:i + kh, j:j + kw]
            for c in range(c_out):
                h[c, i, j] = torch.clamp((W[c] * patch).sum(), min=0.0)
    return h


def naive_pool(h, p):
    c, H, W = h.shape
    out = torch.zeros(c, H // p, W // p, dtype=D)
    for i in range(H // p):
        for j in range(W // p):
            out[:, i, j] = h[:, i * p:(i + 1) * p, j * p:(j + 1) * p].amax((1, 2))
    return out


def naive_net(weights, x, masks, b):
    """One sample through the net: outputs h_l (conv maps before pooling) and inputs a_l."""
    hs, ins, a = [], [], x
    n_conv = sum(W.dim() == 4 for W in weights)
    for l, W in enumerate(weights):
        if l > 0 and weights[l - 1].dim() == 4:
            a = naive_pool(hs[-1], POOL)
            a = a.flatten() if W.dim() == 2 else a
        elif l > 0:
            a = hs[-1]
        ins.append(a)
        if l < n_conv:
            h = naive_conv_relu(W, a)
        elif l < len(weights) - 1:
            h = torch.clamp(W @ a, min=0.0)
        else:
            z = W @ a
            h = torch.exp(z - z.max()) / torch.exp(z - z.max()).sum()
        if masks is not None and l < len(weights) - 1:
            h = h * masks[l][b]
        hs.append(h)
    return hs, ins


def naive_conv_outer(delta, a, kernel_shape):
    """sum over output positions (i, j) of delta[:, i, j] (x) a[:, i:i+kh, j:j+kw]."""
    dW = torch.zeros(kernel_shape, dtype=D)
    _, _, kh, kw = kernel_shape
    for i in range(delta.shape[1]):
        for j in range(delta.shape[2]):
            dW += delta[:, i, j][:, None, None, None] * a[None, :, i:i + kh, j:j + kw]
    return dW


def naive_conv_pepita(weights, x, target, F, sign, output_error, masks, icml_code=False):
    """docs/pepita.md, with the conv layer's product taken position by position; `icml_code`:
    the authors' compute_delta_w_conv (batch mean, then mean over positions) and its update
    `W += lr dw / B`, i.e. dW = -dw / B."""
    B, L = x.shape[0], len(weights)
    dW = [torch.zeros_like(W) for W in weights]
    for b in range(B):
        hs, _ = naive_net(weights, x[b], masks, b)
        e = hs[-1] - target[b]
        x_err = x[b] + sign * (F @ e).view(IMAGE)
        hs_err, ins_err = naive_net(weights, x_err, masks, b)
        for l in range(L - 1):
            diff = hs[l] - hs_err[l]
            if weights[l].dim() == 4:
                update = naive_conv_outer(diff, ins_err[l], weights[l].shape)
                if icml_code:
                    update = -update / (diff.shape[1] * diff.shape[2]) / B
                dW[l] += update
            else:
                dW[l] += torch.outer(diff, ins_err[l])
        e_out = hs_err[-1] - target[b] if output_error == "modulated" else e
        dW[-1] += torch.outer(e_out, ins_err[-1])
    return [d / B for d in dW]


def assert_all_close(got, want, rtol=1e-10, atol=1e-12):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- oracles

@pytest.mark.parametrize("sign,output_error", [(1.0, "modulated"), (-1.0, "clean")])
def test_1x1_conv_on_1x1_images_is_the_fc_rule(sign, output_error):
    g = torch.Generator().manual_seed(3)
    B, sizes = 6, [7, 6, 5, 4, 3]  # d, two 1x1 conv layers, one FC hidden layer, C
    fc = [torch.randn(sizes[i + 1], sizes[i], generator=g, dtype=D) * 0.7 for i in range(4)]
    conv = [W[:, :, None, None] for W in fc[:2]] + fc[2:]
    x = torch.rand(B, sizes[0], generator=g, dtype=D)
    target = nnf.one_hot(torch.randint(0, 3, (B,), generator=g), 3).double()
    F = torch.randn(sizes[0], 3, generator=g, dtype=D) * 0.5
    masks = [(torch.rand(B, n, generator=g, dtype=D) < 0.7).double() / 0.7 for n in sizes[1:-1]]
    conv_masks = [m[:, :, None, None] for m in masks[:2]] + masks[2:]
    x_img = x[:, :, None, None]
    want = pepita_updates(fc, x, target, F, sign=sign, output_error=output_error, masks=masks)
    got = pepita_updates(conv, x_img, target, F, sign=sign, output_error=output_error,
                         masks=conv_masks)
    assert_all_close([d.reshape(w.shape) for d, w in zip(got, want)], want)
    # BP and FA take the same path through 1x1 convs
    assert_all_close([d.reshape(w.shape) for d, w in zip(bp_updates(conv, x_img, target), want)],
                     bp_updates(fc, x, target))
    # the ICML code's variant: 1 position, so the conv layers' update is -dW / B
    icml = pepita_updates(conv, x_img, target, F, sign=sign, output_error=output_error,
                          masks=conv_masks, conv_update="icml-code")
    assert_all_close(icml[:2], [-d / B for d in got[:2]])
    assert_all_close(icml[2:], got[2:])


@pytest.mark.parametrize("sign,output_error,masked", [(1.0, "modulated", True),
                                                     (-1.0, "clean", False)])
def test_conv_pepita_equals_loop_over_positions(sign, output_error, masked):
    weights, x, target, F, masks = make_conv_problem(masks=masked)
    got = pepita_updates(weights, x, target, F, sign=sign, output_error=output_error,
                         masks=masks, pool=POOL)
    assert_all_close(got, naive_conv_pepita(weights, x, target, F, sign, output_error, masks))


def as_float32(*tensors):
    return [None if t is None else [u.float() for u in t] if isinstance(t, list) else t.float()
            for t in tensors]


@contextlib.contextmanager
def onednn_off():
    """oneDNN switched off: the path every device without it takes (conv2d, then ReLU).
    (`torch.backends.mkldnn.flags` would also set its TF32 flag, with a warning.)"""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


@pytest.fixture
def without_onednn():
    with onednn_off():
        yield


@pytest.mark.parametrize("masked,onednn", [(True, True), (False, True), (True, False)])
def test_float32_conv_pepita_equals_the_float64_loop(masked, onednn, request):
    """The float32 path (on the CPU: channels-last maps, oneDNN's convolution with the ReLU
    fused in; without oneDNN conv2d then ReLU) against the float64 loop over positions."""
    if not onednn:
        request.getfixturevalue("without_onednn")
    weights, x, target, F, masks = make_conv_problem(seed=9, B=5, masks=masked)
    want = naive_conv_pepita(weights, x, target, F, 1.0, "modulated", masks)
    w32, x32, t32, F32, m32 = as_float32(weights, x, target, F, masks)
    got = pepita_updates(w32, x32, t32, F32, masks=m32, pool=POOL)
    assert all(g.dtype == torch.float32 for g in got)
    assert_all_close(got, [w.float() for w in want], rtol=1e-4, atol=1e-6)


def test_float32_conv_bp_equals_autograd():
    weights, x, target, _, _ = make_conv_problem(seed=10, B=6)
    w32, x32, t32 = as_float32(weights, x, target)
    assert_all_close(bp_updates(w32, x32, t32, pool=POOL),
                     [g.float() for g in autograd_grads(weights, x, target)],
                     rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("c_in,bias", [(1, False), (3, True)])
def test_conv_relu_and_layouts_keep_the_values(c_in, bias):
    """conv_relu (oneDNN with a fused ReLU on the CPU) equals conv2d then ReLU in float64;
    maps_layout and max_pool keep every value."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(4, c_in, 11, 13, generator=g)
    W = torch.randn(6, c_in, 3, 3, generator=g)
    b = torch.randn(6, generator=g) if bias else None
    want = torch.relu(nnf.conv2d(x.double(), W.double(), None if b is None else b.double()))
    with torch.no_grad():
        got = kernels.conv_relu(x, W, b)
        with onednn_off():
            unfused = kernels.conv_relu(x, W, b)
    torch.testing.assert_close(unfused.double(), want, rtol=1e-5, atol=1e-5)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(kernels.maps_layout(x), x)
    for pool in (2, 3):
        assert torch.equal(kernels.max_pool(got, pool), nnf.max_pool2d(got, pool))


def test_icml_code_conv_update_equals_its_loop():
    weights, x, target, F, _ = make_conv_problem(seed=1)
    got = pepita_updates(weights, x, target, F, output_error="clean", pool=POOL,
                         conv_update="icml-code")
    want = naive_conv_pepita(weights, x, target, F, 1.0, "clean", None, icml_code=True)
    assert_all_close(got, want)


def autograd_grads(weights, x, target, biases=None, masks=None):
    ws = [W.clone().requires_grad_(True) for W in weights]
    bs = None if biases is None else [b.clone().requires_grad_(True) for b in biases]
    m = [1.0] * len(ws) if masks is None else masks
    h = x
    for l, W in enumerate(ws):
        b = None if bs is None else bs[l]
        if W.dim() == 4:
            h = nnf.max_pool2d(torch.relu(nnf.conv2d(h, W, b)) * m[l], POOL)
            h = h if ws[l + 1].dim() == 4 else h.flatten(1)
        elif l < len(ws) - 1:
            h = torch.relu(nnf.linear(h, W, b)) * m[l]
        else:
            h = nnf.linear(h, W, b)
    loss = nnf.cross_entropy(h, target.argmax(1))
    return torch.autograd.grad(loss, ws + (bs or []))


def test_conv_bp_equals_autograd():
    weights, x, target, _, _ = make_conv_problem(seed=2, B=6)
    assert_all_close(bp_updates(weights, x, target, pool=POOL),
                     list(autograd_grads(weights, x, target)))


def test_conv_bp_with_dropout_equals_autograd():
    weights, x, target, _, masks = make_conv_problem(seed=12, B=5)
    f = bp_factors(weights, x, target, masks, None, POOL)
    assert_all_close(updates_from_factors(f),
                     list(autograd_grads(weights, x, target, masks=masks)))


def test_conv_bp_with_biases_equals_autograd():
    weights, x, target, _, _ = make_conv_problem(seed=4, B=5)
    g = torch.Generator().manual_seed(5)
    biases = [torch.randn(W.shape[0], generator=g, dtype=D) * 0.3 for W in weights]
    f = bp_factors(weights, x, target, None, biases, POOL)
    got = updates_from_factors(f) + [bias_update(d) / x.shape[0] for d in f.deltas]
    assert_all_close(got, list(autograd_grads(weights, x, target, biases)))


def test_conv_fa_with_the_forward_weights_is_bp():
    weights, x, target, _, _ = make_conv_problem(seed=6)
    assert_all_close(fa_updates(weights, x, target, [W.clone() for W in weights[1:]], pool=POOL),
                     bp_updates(weights, x, target, pool=POOL))


@pytest.mark.parametrize("fn,signal", [(dfa_updates, "error"), (drtp_updates, "target")])
def test_conv_direct_rules_equal_their_definition(fn, signal):
    """Hidden layer l: delta = (s B_l) viewed as the layer's map, times relu'; the weight update
    is the gradient of <a_l(W), delta> (autograd through the layer only)."""
    weights, x, target, _, _ = make_conv_problem(seed=7)
    g = torch.Generator().manual_seed(8)
    n = [3 * 7 * 7, 4 * 2 * 2, 5]
    fb = [torch.randn(3, k, generator=g, dtype=D) for k in n]
    with torch.no_grad():
        hs, ins = rules.forward_pass(weights, x, pool=POOL)
    e = hs[-1] - target
    s = e if signal == "error" else target
    want = []
    for l, W in enumerate(weights):
        delta = e if l == len(weights) - 1 else (s @ fb[l]).view(hs[l + 1].shape) * (hs[l + 1] > 0)
        Wg = W.clone().requires_grad_(True)
        a = nnf.conv2d(ins[l], Wg) if W.dim() == 4 else ins[l] @ Wg.T
        want.append(torch.autograd.grad((a * delta).sum() / x.shape[0], Wg)[0])
    assert_all_close(fn(weights, x, target, fb, pool=POOL), want)


def test_bad_conv_shapes_are_refused():
    weights, x, target, F, _ = make_conv_problem()
    with pytest.raises(ValueError, match="x has shape"):
        pepita_updates(weights, x.flatten(1), target, F.T, pool=POOL)
    with pytest.raises(ValueError, match="do not chain"):
        bp_updates(weights, x, target, pool=1)  # without pooling the FC layer gets 4 x 6 x 6
    with pytest.raises(ValueError, match="conv layers before"):
        bp_updates([weights[2].T, *weights], x.flatten(1)[:, :4], target)
    with pytest.raises(ValueError, match="kernel"):
        bp_updates(weights, x[:, :, :2, :2], target, pool=POOL)


# ---------------------------------------------------------------- config, net, training loop

def image_data(n=96, shape=(1, 10, 10), classes=4, seed=0) -> TensorData:
    """Random images whose class is the quadrant of their brightest pixel: enough to learn."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2 * n, math.prod(shape), generator=g) * 0.5
    y = torch.randint(0, classes, (2 * n,), generator=g)
    H, W = shape[1:]
    for i, label in enumerate(y.tolist()):
        r, c = (label // 2) * (H // 2) + 2, (label % 2) * (W // 2) + 2
        img = x[i].view(shape)
        img[:, r - 1:r + 2, c - 1:c + 2] = 1.0
    return TensorData("synthetic", x[:n], y[:n], x[n:], y[n:], shape, classes)


SMALL = dict(model="conv", conv_channels=(3, 4), kernel_size=3, pool=2, hidden=(6,), lr=0.02,
             batch_size=16, epochs=2, device="cpu", keep_prob=0.8, lr_milestones=())


def test_presets_and_validation():
    cfg = preset("paper-mnist-conv")
    assert (cfg.model, cfg.conv_channels, cfg.kernel_size, cfg.pool, cfg.hidden) == (
        "conv", (32,), 5, 2, ())
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.keep_prob, cfg.lr_milestones,
            cfg.output_error) == (0.01, 50, 100, 1.0, (), "clean")
    assert preset("paper-cifar10-conv").dataset == "cifar10"
    with pytest.raises(ConfigError, match="hidden"):
        RunConfig(hidden=()).replace()
    with pytest.raises(ConfigError, match="model='nope'.*fc, conv"):
        RunConfig(model="nope").replace()
    with pytest.raises(ConfigError, match="conv_update"):
        RunConfig(conv_update="x").replace()
    with pytest.raises(ConfigError, match="kernel_size"):
        RunConfig(kernel_size=0).replace()
    # FC runs keep the identity (and run id) they had before conv nets existed
    assert "conv_channels" not in RunConfig().identity()
    assert cfg.identity()["conv_channels"] == [32]


def test_paper_conv_net_shapes_and_init():
    data = image_data(n=4, shape=(1, 28, 28), classes=10)
    net = Trainer(preset("paper-mnist-conv", device="cpu"), data, progress=False).members[0].net
    assert [tuple(W.shape) for W in net.weights] == [(32, 1, 5, 5), (10, 32 * 12 * 12)]
    assert net.layer_shapes == [(32, 24, 24), (10,)] and net.sizes == [784, 18432, 10]
    for W in net.weights:  # PyTorch's default: U(+-1/sqrt(fan_in))
        bound = 1 / math.sqrt(W[0].numel())
        assert bound * 0.9 < float(W.abs().max()) <= bound
    assert net.F.shape == (784, 10)


def test_images_too_small_for_the_kernels_are_refused():
    with pytest.raises(ConfigError, match="below one pixel at conv layer 3"):
        Trainer(RunConfig(**{**SMALL, "conv_channels": (2, 2, 2)}), image_data(),
                progress=False)


@pytest.mark.parametrize("rule", ["pepita", "bp", "fa", "dfa", "drtp"])
def test_fused_momentum_step_equals_pure_rule_on_a_conv_net(rule):
    """Two steps of the loop's update equal `v = 0.9 v + lr dW; W -= v` with the pure dW."""
    cfg = RunConfig(rule=rule, bias=False, **SMALL)
    trainer = Trainer(cfg, image_data(), progress=False)
    data, net = trainer.data, trainer.members[0].net  # the run's view: one net's shapes
    weights = [W.clone() for W in net.weights]
    initial = [W.clone() for W in net.weights]
    velocity = [torch.zeros_like(W) for W in weights]
    for step in range(2):
        rows = slice(step * 16, (step + 1) * 16)
        x, target = data.x_train[rows], trainer.eye[data.y_train[rows]]
        loop_masks = trainer.dropout_masks(16)  # (K = 1, B, ...): the run's are [0]
        masks = [m[0].clone() for m in loop_masks]
        x_img = net.shape_input(x)
        if rule == "pepita":
            dW = pepita_updates(weights, x_img, target, net.F, masks=masks, pool=2)
        elif rule == "bp":
            dW = updates_from_factors(bp_factors(weights, x_img, target, masks, None, 2))
        else:
            fn = {"fa": rules.fa_factors, "dfa": rules.dfa_factors, "drtp": rules.drtp_factors}
            dW = updates_from_factors(fn[rule](weights, x_img, target, net.feedback, masks,
                                               None, 2))
        for W, v, d in zip(weights, velocity, dW):
            v.mul_(0.9).add_(d, alpha=cfg.lr)
            W.sub_(v)
        trainer.apply(trainer.factors(x, target, loop_masks), cfg.lr)
    for W_loop, W_pure, W_0 in zip(net.weights, weights, initial):
        torch.testing.assert_close(W_loop, W_pure, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(W_loop, W_0)


def test_conv_run_records_and_round_trip(tmp_path):
    cfg = RunConfig(rule="pepita", bias=True, **SMALL)
    run = pl.train(cfg, data=image_data(), out=tmp_path / "run", progress=False, trace_every=3)
    h, a = run.history, run.activations
    assert list(h.layer.values) == [1, 2, 3, 4] and str(h.model.values[0]) == "conv"
    assert int(h.depth.values[0]) == 3
    assert np.isnan(h.f_angle.values).all()  # no end-to-end matrix in a conv net
    assert np.isfinite(h.bp_cosine.values).all()
    assert a.h_diff_1.sizes["unit_1"] == 3 * 8 * 8 and a.h_2.sizes["unit_2"] == 4 * 2 * 2
    assert a.h_3.sizes["unit_3"] == 6 and a.x_err.sizes["height"] == 10
    loaded = pl.load_run(run.path)
    assert loaded.config == cfg and loaded.net.image_shape == (1, 10, 10)
    for W_saved, W_live in zip(loaded.net.weights, run.net.weights):
        assert torch.equal(W_saved, W_live)
    # resuming continues the run
    assert pl.resume(run.path, data=image_data(), epochs=3, progress=False).history.sizes[
        "epoch"] == 4


def test_population_refuses_conv_nets():
    with pytest.raises(ConfigError, match="conv"):
        pl.train_population([RunConfig(**SMALL), RunConfig(**{**SMALL, "seed": 1})],
                            data=image_data(), progress=False)


@pytest.mark.parametrize("rule", ["pepita", "bp"])
def test_conv_learns_on_mnist(rule, data_dir):
    """One epoch of the paper's conv net on 2000 MNIST samples learns well above chance."""
    cfg = preset("paper-mnist-conv", rule=rule, epochs=1, subset=2000, data_dir=str(data_dir),
                 device="cpu", download=False)
    run = pl.train(cfg, progress=False)
    assert run.status == "completed"
    assert run.test_acc > 0.5, run.test_acc


def test_conv_grids_and_sweeps_train_one_point_at_a_time(data_dir, tmp_path):
    """Populations refuse conv nets; train_grid and `pepita-lab sweep` train conv points one
    after the other, every point a full run on real MNIST."""
    from pepita_lab.cli import main

    base = preset("paper-mnist-conv", epochs=1, subset=300, data_dir=str(data_dir),
                  device="cpu", download=False)
    ds = pl.train_grid(base, lr=[0.001, 0.01], out=tmp_path / "grid", progress=False)
    assert list(ds.lr.values) == [0.001, 0.01] and (ds.status == "completed").all()
    assert len(list((tmp_path / "grid").iterdir())) == 2
    assert main(["sweep", "--preset", "paper-mnist-conv", "--lr", "0.001", "0.01",
                 "--epochs", "1", "--subset", "300", "--data-dir", str(data_dir),
                 "--no-download", "--device", "cpu", "--out", str(tmp_path / "sweep"),
                 "--quiet"]) == 0
    sweep = xr.open_dataset(tmp_path / "sweep" / "sweep.nc")
    assert sweep.sizes["lr"] == 2 and np.isfinite(sweep.test_acc.values).all()


def test_runs_written_before_conv_nets_concatenate_with_conv_runs(tmp_path):
    """A history written before the `model` coordinate existed gets it back on loading."""
    from pepita_lab.records import read_netcdf, write_netcdf

    fc = pl.train(RunConfig(dataset="synthetic", hidden=(8,), epochs=1, subset=64, device="cpu"),
                  out=tmp_path / "fc", progress=False)
    for name in ("history.nc", "activations.nc"):
        write_netcdf(read_netcdf(fc.path / name).drop_vars("model"), fc.path / name)
    conv = pl.train(RunConfig(**{**SMALL, "epochs": 1}), data=image_data(), out=tmp_path / "conv",
                    progress=False)
    both = pl.load_runs([fc.path, conv.path])
    assert list(both.model.values) == ["fc", "conv"] and both.sizes["layer"] == 4
