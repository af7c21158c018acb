"""Property-based tests (hypothesis): any config or command line either runs on tiny settings
or is refused with one clear line; never an unexpected exception."""

import math
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pepita_lab as pl
from pepita_lab.cli import main
from pepita_lab.config import ConfigError, RunConfig, field_names

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 200),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.text(max_size=6), st.lists(st.integers(-2, 40), max_size=3),
    st.sampled_from(["pepita", "bp", "fa", "dfa", "drtp", "synthetic", "cpu", "auto", "clean",
                     "modulated", "gaussian"]),
)
TINY = dict(dataset="synthetic", subset=64, epochs=1, device="cpu", eval_batch_size=500)
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def tiny(cfg: RunConfig) -> RunConfig:
    return cfg.replace(**TINY, hidden=tuple(min(w, 16) for w in cfg.hidden),
                       batch_size=min(cfg.batch_size, 64))


@FAST
@given(st.dictionaries(st.sampled_from(field_names()), VALUES, max_size=6))
def test_any_config_runs_or_is_refused_clearly(fields):
    try:  # refused where it is made, or where it is resolved for training
        cfg = pl.resolve(RunConfig(**fields))
    except ConfigError as err:
        message = str(err)
        assert "\n" not in message and "=" in message  # names the field and the value
        return
    with warnings.catch_warnings():  # a diverged run or one at chance says so: said, not asked
        warnings.simplefilter("ignore", RuntimeWarning)
        run = pl.train(tiny(cfg), progress=False, traces=False)
    assert run.status in ("completed", "diverged")
    if run.status == "completed":
        assert math.isfinite(run.test_acc)


FLAGS = ["--rule", "--lr", "--batch-size", "--f-scale", "--sign", "--output-error",
         "--keep-prob", "--momentum", "--seed", "--feedback-scale", "--lr-milestones",
         "--hidden"]
WORDS = st.one_of(st.sampled_from(["0", "-1", "1", "0.5", "1e9", "nan", "inf", "-inf", "2",
                                   "bp", "clean", "x", "", "1e-3", "3"]),
                  st.text(max_size=4))


@FAST
@given(st.lists(st.tuples(st.sampled_from(FLAGS), WORDS), max_size=4))
def test_any_command_line_runs_or_is_refused(capsys, flags):
    capsys.readouterr()  # the fixture spans every example: start each one empty
    argv = ["train"] + [s for flag, word in flags for s in (flag, word)]
    argv += ["--dataset", "synthetic", "--subset", "64", "--epochs", "1", "--device", "cpu",
             "--quiet"]
    if not any(flag == "--hidden" for flag, _ in flags):
        argv += ["--hidden", "8"]
    else:  # keep generated widths small: a wide one is refused by the memory check, not slow
        # (isdecimal, not isdigit: "²" is a digit that int() refuses)
        argv = [w if not w.isdecimal() or int(w) < 64 else "8" for w in argv]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse: a value of the wrong type
        assert exit.code == 2
        return
    err = capsys.readouterr().err.strip()
    assert code in (0, 2, 3), (argv, code, err)
    if code == 2:
        assert len(err.splitlines()) == 1 and err.startswith("pepita-lab: error:"), err
