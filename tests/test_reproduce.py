"""`pepita-lab reproduce` end to end on tiny settings: synthetic data, a real MNIST subset and
generated files in the real CIFAR format."""


import numpy as np

import pepita_lab as pl
from pepita_lab.cli import main
from test_data import fake_cifar  # noqa: F401  (fixture: CIFAR files in the real format)


def table_rows(out):
    lines = (out / "table.md").read_text().strip().splitlines()[2:]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines]
    return {row[1]: row for row in rows}  # rule -> model, rule, dataset, acc, runs, paper


def run_table1(out, *extra):
    return main(["reproduce", "table1", "--seeds", "2", "--baseline-seeds", "1", "--epochs",
                 "1", "--device", "cpu", "--quiet", "--out", str(out), *extra])


def test_table1_on_synthetic_has_every_rule_and_seed_and_right_statistics(tmp_path, capsys):
    out = tmp_path / "t1"
    assert run_table1(out, "--dataset", "synthetic", "--no-figures") == 0
    rows = table_rows(out)
    assert set(rows) == {"pepita", "bp", "fa", "drtp"}
    assert rows["pepita"][4] == "2 (0, 1)" and rows["drtp"][4] == "1 (0)"
    for rule in ("pepita", "bp"):
        accs = [pl.load_run(out / "runs" / f"fc-{rule}-s{s}").test_acc for s in (0, 1)]
        want = f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs, ddof=1):.2f}"
        assert rows[rule][3] == want
    trained = (out / "log.jsonl").read_text().count("\n")
    assert trained == 6
    assert run_table1(out, "--dataset", "synthetic", "--no-figures") == 0  # resumes: nothing new
    assert (out / "log.jsonl").read_text().count("\n") == trained


def test_table1_on_a_real_mnist_subset_with_figures(tmp_path, data_dir):
    out = tmp_path / "t1"
    assert run_table1(out, "--dataset", "mnist", "--subset", "600", "--data-dir",
                      str(data_dir)) == 0
    rows = table_rows(out)
    assert rows["pepita"][5] == "98.0"  # the paper's number beside ours
    for name in ("test_curves", "f_angle", "slowness", "activation_differences"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000
    assert (out / "table.csv").read_text().startswith("run,")


def test_the_cifar_pipeline_runs_on_files_in_the_real_format(fake_cifar, tmp_path):  # noqa: F811
    root, _, _ = fake_cifar
    for dataset in ("cifar10", "cifar100"):
        out = tmp_path / dataset
        assert run_table1(out, "--dataset", dataset, "--data-dir", str(root),
                          "--no-figures") == 0
        rows = table_rows(out)
        assert set(rows) == {"pepita", "bp", "fa", "drtp"}
        assert rows["pepita"][5] == {"cifar10": "52.6", "cifar100": "24.9"}[dataset]
        run = pl.load_run(out / "runs" / "fc-pepita-s0")
        assert run.config.lr == 0.01 and run.config.dataset == dataset
        assert run.net.weights[0].shape[1] == 3072
        assert run.net.weights[-1].shape[0] == (100 if dataset == "cifar100" else 10)


def test_f_scale_figure_sweeps_six_scales(tmp_path, capsys):
    out = tmp_path / "fig"
    assert main(["reproduce", "figures", "--dataset", "synthetic", "--epochs", "1",
                 "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    import xarray as xr

    ds = xr.open_dataset(out / "f_scale_sweep.nc")
    assert sorted(ds.f_scale.values) == [0.01, 0.02, 0.05, 0.1, 0.3, 1.0]
    assert (out / "figures" / "final_accuracy_vs_f_scale.png").stat().st_size > 5000
    assert set(ds.rule.values) == {"pepita"}


def test_table1_conv_reports_conv_pepita_beside_conv_bp(tmp_path, data_dir):
    out = tmp_path / "conv"
    assert run_table1(out, "--dataset", "mnist", "--model", "conv", "--subset", "300",
                      "--data-dir", str(data_dir), "--no-figures") == 0
    rows = table_rows(out)
    assert set(rows) == {"pepita", "bp"} and rows["pepita"][0] == rows["bp"][0] == "conv"
    assert rows["pepita"][5] == ""  # the paper's numbers are for the FC nets


def test_a_finished_run_is_not_trained_again_diverged_or_not(tmp_path):
    from pepita_lab.config import RunConfig
    from pepita_lab.reproduce import Plan, run_plan

    good = RunConfig(dataset="synthetic", hidden=(8,), epochs=1)
    bad = good.replace(f_scale=100.0, lr=1.0)  # diverges in its first epoch
    plan = Plan(tmp_path, [("good", good), ("bad", bad)])
    run_plan(plan, progress=False)
    log = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [line.count('"diverged"') for line in log] == [0, 1]
    run_plan(plan, progress=False)  # both finished: nothing trained, nothing logged
    assert (tmp_path / "log.jsonl").read_text().splitlines() == log
    run_plan(Plan(tmp_path, [("good", good.replace(seed=1))]), progress=False)  # other settings
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3
