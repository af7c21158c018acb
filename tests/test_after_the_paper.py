"""The ICLR 2024 PEPITA options (Srinivasan et al.): oracle tests against the per-sample
float64 loops of tests/oracles.py (normalisation, the forward and time-local variants, weight
decay and torch's momentum, weight mirroring), the factorised F and He-normal init, the
options' defaults leaving a run's identity as it was, their refusals, and population members
equal to single runs for every option populations take."""

import math

import pytest
from pepita_lab.rules import validate
import torch

import pepita_lab as pl
from pepita_lab.config import ConfigError, RunConfig
from pepita_lab.nets import chain_product, he_normal, init_F_factors, init_net
from pepita_lab.rules import pepita_options_factors as pepita_factors, updates_from_factors
from pepita_lab.members import member_velocity
from pepita_lab.rules.pepita.mirroring import mirror_step
from pepita_lab.rules.pepita.rule import mirrors_in
from oracles import mirror_reference, pepita_reference, sgd_reference, time_local_reference
from pepita_lab.training import Trainer

pytestmark = pytest.mark.numerics

D = torch.float64


def problem(sizes=(12, 9, 7, 4), B=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(b, a, generator=g, dtype=D) * math.sqrt(2 / a)
               for a, b in zip(sizes, sizes[1:])]
    x = torch.rand(B, sizes[0], generator=g, dtype=D)
    target = torch.nn.functional.one_hot(torch.randint(0, sizes[-1], (B,), generator=g),
                                         sizes[-1]).to(D)
    F = torch.randn(sizes[0], sizes[-1], generator=g, dtype=D) * 0.3
    masks = [(torch.rand(B, n, generator=g, dtype=D) < 0.8).to(D) / 0.8 for n in sizes[1:-1]]
    return weights, x, target, F, masks


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("variant", ["modulated", "forward", "time-local"])
@pytest.mark.parametrize("sign,output_error,dropout", [(1.0, "modulated", False),
                                                       (-1.0, "clean", True)])
def test_pepita_options_equal_the_per_sample_loops(normalize, variant, sign, output_error,
                                                   dropout):
    weights, x, target, F, masks = problem()
    masks = masks if dropout else None
    f = pepita_factors(weights, x, target, F, sign=sign, output_error=output_error,
                       masks=masks, normalize=normalize, variant=variant)
    got = updates_from_factors(f)
    want = pepita_reference(weights, x, target, F, sign=sign, output_error=output_error,
                            masks=masks, normalize=normalize, variant=variant)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_normalisation_changes_the_update_and_the_default_is_the_paper():
    weights, x, target, F, _ = problem()
    plain = updates_from_factors(pepita_factors(weights, x, target, F))
    normed = updates_from_factors(pepita_factors(weights, x, target, F, normalize=True))
    assert not torch.allclose(plain[0], normed[0])
    paper = pepita_reference(weights, x, target, F)
    for g, w in zip(plain, paper):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def trainer(**kw):
    config = dict(dataset="synthetic", hidden=(16, 12), epochs=2, keep_prob=1.0, seed=1)
    config.update(kw)
    return Trainer(RunConfig(**config), progress=False)


@pytest.mark.parametrize("style", ["paper", "torch"])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_weight_decay_and_momentum_conventions_equal_the_reference(style, wd):
    t = trainer(momentum_style=style, weight_decay=wd, bias=True)
    run = t.members[0]  # the run's views (the loop's tensors and factors carry a K = 1)
    x, y = t.data.x_train[:32], t.data.y_train[:32]
    velocity = [v.double() for v in member_velocity(t.velocity, t.net, 0)]
    params = [p.double() for p in run.net.params()]
    for lr in (0.1, 0.03):  # an lr change: where the two conventions part
        f = t.factors(x, t.eye[y], None)
        n_w = len(t.net.weights)
        dW = [d.double()[0] for d in updates_from_factors(f)]
        db = [d.double()[0].sum(0) / f.batch for d in f.deltas]
        t.apply(f, lr)
        grads = dW + db[:len(params) - n_w]
        stepped = [sgd_reference(p, v, g, lr=lr, momentum=0.9, weight_decay=wd, style=style)
                   for p, v, g in zip(params, velocity, grads)]
        params, velocity = [s[0] for s in stepped], [s[1] for s in stepped]
        for got, want in zip(run.net.params(), params):
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_the_conventions_agree_at_a_constant_lr_and_part_at_an_lr_change():
    runs = {s: pl.train(RunConfig(dataset="synthetic", hidden=(16,), epochs=3, lr=0.05,
                                  lr_milestones=(2,), momentum_style=s), progress=False)
            for s in ("paper", "torch")}
    acc = {s: r.history.test_loss.values[0] for s, r in runs.items()}
    assert acc["paper"][:3] == pytest.approx(acc["torch"][:3], rel=1e-4)
    assert acc["paper"][3] != pytest.approx(acc["torch"][3], rel=1e-6)


def test_time_local_step_equals_two_momentum_steps():
    t = trainer(pepita_variant="time-local")
    net = t.members[0].net  # the run's views (the loop's tensors carry a K = 1)
    x, y = t.data.x_train[:20], t.data.y_train[:20]
    weights = [W.double().clone() for W in net.weights]
    velocity = [v.double().clone() for v in member_velocity(t.velocity, t.net, 0)]
    t.train_step(x, t.eye[y], 0.05)
    want, want_v = time_local_reference(weights, x.double(), t.eye[y].double(),
                                        net.F.double(), lr=0.05, momentum=0.9,
                                        velocity=velocity, sign=1.0)
    for got, w in zip(net.weights, want):
        torch.testing.assert_close(got.double(), w, rtol=1e-5, atol=1e-6)
    for got, w in zip(member_velocity(t.velocity, t.net, 0), want_v):
        torch.testing.assert_close(got.double(), w, rtol=1e-5, atol=1e-6)


def test_mirror_step_equals_the_reference():
    config = RunConfig(dataset="synthetic", hidden=(16, 12), f_distribution="factorised",
                       weight_mirroring=True, mirror_lr=0.5, mirror_decay=0.01)
    net = init_net(config, 32, 10)
    weights = [W.double() for W in net.weights]
    factors = [B.double() for B in net.F_factors]
    g = torch.Generator().manual_seed(5)
    noises = [torch.randn(8, W.shape[1], generator=g) * config.mirror_noise
              for W in net.weights]
    mirror_step(net, config, 8, [torch.Generator().manual_seed(5)])
    want, F = mirror_reference(weights, factors, [n.double() for n in noises], lr=0.5,
                               decay=0.01, target_std=0.05 * math.sqrt(2 / 32))
    for got, w in zip(net.F_factors, want):
        torch.testing.assert_close(got.double(), w, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(net.F.double(), F, rtol=1e-4, atol=1e-7)
    assert float(net.F.std()) == pytest.approx(0.05 * math.sqrt(2 / 32), rel=1e-5)


def test_mirroring_turns_each_factor_towards_its_layer():
    config = RunConfig(dataset="synthetic", hidden=(24,), f_distribution="factorised",
                       weight_mirroring=True, mirror_lr=0.5, mirror_decay=0.01)
    net = init_net(config, 32, 10)
    from pepita_lab.traces import mirror_angles

    before = mirror_angles(net)
    gens = [torch.Generator().manual_seed(0)]
    for _ in range(200):
        mirror_step(net, config, 64, gens)
    after = mirror_angles(net)
    assert all(a < b - 20 for a, b in zip(after, before)), (before, after)


def test_mirroring_schedule_follows_pre_mirroring_and_the_period():
    c = RunConfig(f_distribution="factorised", weight_mirroring=True, premirror_epochs=2,
                  mirror_period=3)
    assert [e for e in range(10) if mirrors_in(c, e)] == [0, 1, 2, 5, 8]
    assert not any(mirrors_in(RunConfig(), e) for e in range(5))


def test_pre_mirroring_epochs_leave_the_forward_weights_alone():
    t = trainer(f_distribution="factorised", weight_mirroring=True, premirror_epochs=1)
    W0 = [W.clone() for W in t.net.weights]
    F0 = t.net.F.clone()
    t.train_epoch()
    assert all(torch.equal(a, b) for a, b in zip(W0, t.net.weights))
    assert not torch.equal(F0, t.net.F)
    t.train_epoch()
    assert not torch.equal(W0[0], t.net.weights[0])


@pytest.mark.parametrize("sizes", [[784, 1024, 10], [784, 1024, 1024, 10], [32, 16, 8, 4, 10]])
def test_factorised_F_has_the_paper_std_and_is_the_product(sizes):
    factors, F = init_F_factors(sizes, 0.05, torch.Generator().manual_seed(0))
    assert [tuple(B.shape) for B in factors] == list(zip(sizes, sizes[1:]))
    torch.testing.assert_close(F, chain_product(factors))
    assert float(F.std()) == pytest.approx(0.05 * math.sqrt(2 / sizes[0]), rel=1e-5)


def test_he_normal_init():
    W = he_normal((512, 400), 400, torch.Generator().manual_seed(0))
    assert float(W.std()) == pytest.approx(math.sqrt(2 / 400), rel=0.01)
    assert abs(float(W.mean())) < 0.002
    net = init_net(RunConfig(dataset="synthetic", hidden=(300,), init="he-normal"), 32, 10)
    assert float(net.weights[0].std()) == pytest.approx(math.sqrt(2 / 32), rel=0.03)


def test_options_at_their_defaults_leave_the_run_identity_as_in_0_2_2():
    keys = set(RunConfig().identity())
    for name in ("momentum_style", "weight_decay", "init", "normalize", "pepita_variant",
                 "weight_mirroring", "mirror_lr", "premirror_epochs", "ff_threshold"):
        assert name not in keys
        assert name in RunConfig(**{"weight_decay": 1e-4}).identity() or name != "weight_decay"
    from pepita_lab.records import run_id

    assert run_id(RunConfig()) == "pepita-mnist-h1024-f0.05-lr0.1-s0-" + run_id(
        RunConfig()).rsplit("-", 1)[1]
    assert run_id(RunConfig(normalize=True)) != run_id(RunConfig())


@pytest.mark.parametrize("changes,match", [
    (dict(rule="bp", normalize=True), "normalize"),
    (dict(rule="fa", pepita_variant="forward"), "pepita_variant"),
    (dict(weight_mirroring=True), "factorised"),
    (dict(model="conv", hidden=(), normalize=True), "fully connected"),
    (dict(model="conv", hidden=(), f_distribution="factorised"), "fully connected"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(momentum_style="adam"), "momentum_style"),
    (dict(mirror_period=0), "mirror_period"),
])
def test_options_refused_where_they_do_not_apply(changes, match):
    with pytest.raises(ConfigError, match=match):
        validate(RunConfig(**changes))


POPULATION_OPTIONS = [
    dict(weight_decay=1e-3),
    dict(momentum_style="torch", lr_milestones=(1,)),
    dict(normalize=True, lr=0.5),
    dict(pepita_variant="forward"),
    dict(pepita_variant="time-local", lr=0.01),
    dict(f_distribution="factorised"),
    dict(f_distribution="factorised", weight_mirroring=True, premirror_epochs=1),
    dict(init="he-normal", bias=True, weight_decay=1e-3),
]


@pytest.mark.parametrize("options", POPULATION_OPTIONS, ids=lambda o: ",".join(o))
def test_population_members_equal_single_runs(options):
    # a small lr: a member near divergence (lr 0.1 with F scale 0.1 here) amplifies the
    # batched products' rounding past any tolerance
    base = dict(dict(dataset="synthetic", hidden=(24, 16), epochs=2, lr=0.02), **options)
    members = [RunConfig(seed=0, **base), RunConfig(seed=3, f_scale=0.1, **base)]
    if "weight_decay" in options:
        members[1] = members[1].replace(weight_decay=options["weight_decay"] * 2)
    pop = pl.train_population(members, progress=False)
    for k, config in enumerate(members):
        single = pl.train(config, progress=False).history
        member = pop[k].history
        for name in ("test_acc", "test_loss", "train_loss"):
            torch.testing.assert_close(torch.tensor(member[name].values[0]),
                                       torch.tensor(single[name].values[0]), rtol=1e-4,
                                       atol=1e-5, equal_nan=True)


def test_cli_weight_mirroring_trains_and_records_the_angles(tmp_path, capsys):
    from pepita_lab.cli import main

    out = tmp_path / "mirror"
    assert main(["train", "--preset", "paper-mnist", "--dataset", "synthetic", "--hidden", "32",
                 "32", "--f-distribution", "factorised", "--weight-mirroring",
                 "--premirror-epochs", "0", "--epochs", "3", "--out", str(out), "--quiet"]) == 0
    h = pl.load_run(out).history
    angles = h.mirror_angle.isel(run=0).values  # (epoch, layer)
    assert angles.shape == (4, 3) and (angles[0] > 80).all()
    assert (angles[-1, :2] < angles[0, :2] - 20).all()  # the hidden layers' B_l turn to W_l^T
    implied = h.implied_angle.isel(run=0).values
    assert (implied[:, :2] > 0).all() and (implied[:, :2] < 180).all()
    assert (implied[:, 2] != implied[:, 2]).all()  # NaN for the output layer
    assert h.weight_mirroring.item() == 1 and h.f_distribution.item() == "factorised"
    # a run that does not mirror records no mirroring angle
    assert (pl.train(RunConfig(dataset="synthetic", hidden=(8,), epochs=1), progress=False)
            .history.mirror_angle.isnull().all())


def test_cli_refuses_mirroring_without_the_factorised_F(capsys):
    from pepita_lab.cli import main

    assert main(["train", "--dataset", "synthetic", "--weight-mirroring", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--f-distribution factorised" in err and err.count("\n") == 1


def test_reproduce_deeper_writes_the_table_and_figures(tmp_path, capsys):
    from pepita_lab.cli import main
    from pepita_lab.reproduce import DEEPER_VARIANTS, deeper_plan, scaled_milestones

    out = tmp_path / "deeper"
    assert main(["reproduce", "deeper", "--dataset", "synthetic", "--depths", "1", "2",
                 "--width", "16", "--epochs", "2", "--seeds", "2", "--out", str(out),
                 "--quiet"]) == 0
    table = (out / "table.md").read_text()
    rows = [line for line in table.splitlines()[:2 + len(DEEPER_VARIANTS)]]
    assert rows[0] == "| variant | 1 hidden | 2 hidden |"
    assert [r.split(" | ")[0].strip("| ") for r in rows[2:]] == list(DEEPER_VARIANTS)
    assert "(2)" in rows[2] and "min |" in table  # 2 seeds of PEPITA; wall times
    for name in ("test_curves", "mirror_angles", "implied_feedback", "bp_alignment"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    plan = deeper_plan("mnist", epochs=10)
    assert len(plan.runs) == 3 * (4 * 3 + 3 + 1 + 1)  # depths x (PEPITA x4, BP) x 3 + FA, FF
    names = dict(plan.runs)
    assert names["h3-pepita+mirror-s2"].hidden == (1024,) * 3
    assert names["h1-ff-s0"].bias and names["h1-ff-s0"].lr == 0.001
    assert names["h2-pepita+wd+norm-s0"].normalize and scaled_milestones(10) == (6, 9)
    assert all(c.lr_milestones == (6, 9) for c in names.values())


@pytest.mark.parametrize("options", [
    dict(f_distribution="factorised", weight_mirroring=True, premirror_epochs=1),
    dict(pepita_variant="time-local", weight_decay=1e-3, momentum_style="torch"),
    dict(rule="ff", bias=True, lr=0.003, keep_prob=1.0)], ids=["mirroring", "time-local", "ff"])
def test_a_resumed_run_equals_an_uninterrupted_one(options, tmp_path):
    config = RunConfig(**{**dict(dataset="synthetic", hidden=(24, 16), epochs=3, lr=0.02),
                          **options})
    whole = pl.train(config, out=tmp_path / "whole", progress=False)
    pl.train(config.replace(epochs=2), out=tmp_path / "part", progress=False)
    resumed = pl.resume(tmp_path / "part", epochs=3, progress=False)
    for name in ("test_acc", "test_loss", "train_loss"):
        assert resumed.history[name].values.tobytes() == whole.history[name].values.tobytes()
    for a, b in zip(resumed.net.F_factors + resumed.net.weights,
                    whole.net.F_factors + whole.net.weights):
        assert torch.equal(a, b)
