"""End-to-end: the `pepita-lab` command as a user runs it."""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from pepita_lab.cli import main

SYNTH = ["train", "--dataset", "synthetic", "--hidden", "32", "--epochs", "2", "--lr", "0.05",
         "--batch-size", "32", "--device", "cpu", "--quiet"]


def test_train_synthetic_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(SYNTH + ["--out", str(out), "--f-scale", "0.1", "--sign", "-1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("test_acc=0.") and len(lines[-1]) == len("test_acc=0.1234")
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["f_scale"] == 0.1 and config["sign"] == -1.0 and config["hidden"] == [32]
    with xr.open_dataset(out / "history.nc") as h:
        assert list(h.epoch.values) == [0, 1, 2]  # 0: the initial net
        assert float(h.test_acc[0, -1]) == pytest.approx(float(lines[-1].split("=")[1]), abs=1e-4)
        assert json.loads(h.attrs["config"])["f_scale"] == 0.1
    assert (out / "checkpoint.pt").stat().st_size > 0


def test_flags_after_a_preset_override_it(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--preset", "paper-mnist", "--dataset", "synthetic", "--epochs", "1",
                 "--lr", "0.02", "--hidden", "8", "--quiet", "--device", "cpu",
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["lr"], config["epochs"], config["hidden"]) == (0.02, 1, [8])
    assert config["lr_milestones"] == [60, 90] and config["keep_prob"] == 0.9


def test_same_seed_twice_gives_identical_histories(tmp_path):
    for name in ("a", "b"):
        assert main(SYNTH + ["--out", str(tmp_path / name)]) == 0
    with xr.open_dataset(tmp_path / "a/history.nc") as a, \
            xr.open_dataset(tmp_path / "b/history.nc") as b:
        for var in ("train_loss", "test_loss", "test_acc"):
            np.testing.assert_array_equal(a[var].values, b[var].values)


@pytest.mark.parametrize("flags, words", [
    (["--dataset", "imagenet"], ["dataset", "imagenet"]),
    (["--rule", "hebb"], ["rule", "hebb"]),
    (["--lr", "0"], ["lr", "0.0"]),
    (["--lr", "-0.1"], ["lr", "-0.1"]),
    (["--batch-size", "0"], ["batch_size", "0"]),
    (["--hidden", "32", "-4"], ["hidden", "-4"]),
    (["--f-scale", "-1"], ["f_scale", "-1"]),
    (["--sign", "2"], ["sign", "2"]),
    (["--output-error", "both"], ["output_error", "both"]),
    (["--keep-prob", "1.5"], ["keep_prob", "1.5"]),
    (["--subset", "0"], ["subset", "0"]),
])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys, flags, words):
    out = tmp_path / "run"
    assert main(SYNTH + flags + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not out.exists()


def test_missing_data_names_the_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist", "--data-dir", str(empty), "--no-download",
                 "--epochs", "1", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(empty) in err and "pepita-lab data --mirror" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_console_script_trains_on_real_mnist_subset(tmp_path, data_dir):
    """The installed command, in a subprocess, on real data."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pepita_lab.cli", "train", "--preset", "paper-mnist",
         "--epochs", "1", "--subset", "3000", "--data-dir", str(data_dir), "--device", "cpu",
         "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("test_acc=") and float(last.split("=")[1]) > 0.8
    assert {p.name for p in out.iterdir()} >= {"config.json", "history.nc", "checkpoint.pt"}


def test_inspect_and_compare_summarise_runs(tmp_path, capsys):
    for seed in (0, 1):
        assert main(SYNTH + ["--seed", str(seed), "--out", str(tmp_path / f"s{seed}"),
                             "--trace-every", "20"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "s0")]) == 0
    text = capsys.readouterr().out
    for words in ("rule=pepita", "test_acc=", "alignment with BP", "layer 2", "F angle",
                  "slowness"):
        assert words in text, text
    assert main(["compare", str(tmp_path / "s0"), str(tmp_path / "s1")]) == 0
    text = capsys.readouterr().out
    assert "±" in text and "| pepita | synthetic |" in text and "0, 1" in text


def test_inspect_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_cost_prints_the_model_beside_counted_and_measured(capsys):
    assert main(["cost", "--dataset", "synthetic", "--hidden", "32", "16", "--batch-size",
                 "16", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "synthetic, 32-32-16-10, batch 16, cpu" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    for step in ("bp", "bp-autograd", "fa", "dfa", "drtp", "ff", "pepita", "pepita-streamed"):
        assert step in lines
        assert lines[step][1] == lines[step][2]  # MACs: model == FlopCounterMode's count
    for says in ("MACs per step (model)", "MACs per step (counted)", "FlopCounterMode",
                 "activations (KiB, model)", "peak memory (KiB, measured)",
                 "measured / model", "step time (ms)", "torch.profiler"):
        assert says in text
    assert "nan" not in text.lower()  # every step timed, BP by autograd too


def test_cost_of_the_conv_net_model_only(capsys):
    assert main(["cost", "--model", "conv", "--no-measure"]) == 0
    text = capsys.readouterr().out
    assert "the paper's conv net" in text and "pepita-streamed" in text
    assert " ff " not in text and "measured" not in text.split("\n")[1]


def test_figures_writes_pngs_of_runs(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(SYNTH + ["--hidden", "32", "16", "--out", str(run_dir)]) == 0
    assert main(["figures", str(run_dir), "--format", "png", "svg"]) == 0
    figures = run_dir / "figures"
    for name in ("learning_curves", "bp_alignment", "f_alignment", "activation_heatmap_layer1",
                 "activation_heatmap_layer2", "activation_distribution_layer1",
                 "modulated_inputs"):
        png = (figures / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
        assert (figures / f"{name}.svg").read_text().lstrip().startswith("<svg")


def test_demo_trains_both_rules_and_writes_figures(tmp_path, data_dir, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "1", "--subset", "1000", "--data-dir", str(data_dir),
                 "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "pepita: test_acc=" in text and "bp: test_acc=" in text
    assert (out / "figures" / "learning_curves.png").stat().st_size > 5000
    assert (out / "pepita" / "history.nc").is_file() and (out / "bp" / "history.nc").is_file()
