"""A misspelled name and its nearest allowed one: `nearest` (the one place that guesses) and
`unknown_name`, the ConfigError that says it. `config.suggest_field` / `config.unknown_field`
(fields.py) apply them to `RunConfig`'s fields for `RunConfig(...)`, `replace`, `from_dict`,
`preset`, grids, sweep specs and the CLI. This module imports no other of the package's."""

from __future__ import annotations

import difflib

from .facts import ConfigError

# Natural synonyms and common slips that difflib's ratio alone would miss or misplace.
ALIASES = {
    "learning_rate": "lr", "learnig_rate": "lr", "learningrate": "lr", "rate": "lr",
    "step_size": "lr", "eta": "lr", "batch": "batch_size", "batchsize": "batch_size",
    "bs": "batch_size", "minibatch": "batch_size", "epoch": "epochs", "n_epochs": "epochs",
    "num_epochs": "epochs", "f_scle": "f_scale", "fscale": "f_scale", "f": "f_scale",
    "layers": "hidden", "hidden_sizes": "hidden", "widths": "hidden", "width": "hidden",
    "hidden_layers": "hidden", "dropout": "keep_prob", "keep": "keep_prob",
    "milestones": "lr_milestones", "gamma": "lr_gamma", "decay": "weight_decay",
    "wd": "weight_decay", "l2": "weight_decay", "biases": "bias", "use_bias": "bias",
    "random_seed": "seed", "algorithm": "rule", "method": "rule", "learning_rule": "rule",
    "data": "dataset", "data_set": "dataset", "channels": "conv_channels",
    "kernel": "kernel_size", "pooling": "pool", "n_train": "subset", "samples": "subset",
    "architecture": "model", "arch": "model",
}


def nearest(name: str, names) -> str | None:
    """The name among `names` that `name` most likely means (a synonym from `ALIASES`, else
    the closest by `difflib`), or None."""
    names = list(names)
    if name in names:
        return name
    key = str(name).strip().lower().replace("-", "_")
    if key in names:
        return key
    if ALIASES.get(key) in names:
        return ALIASES[key]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_name(name, where: str, names,
                 listing: str = "help(pepita_lab.RunConfig) lists them") -> ConfigError:
    """The ConfigError for an unknown field `name` given to `where`: it names the nearest of
    `names` (`nearest`), never the whole list (`listing` says where that is)."""
    guess = nearest(name, names)
    hint = f"did you mean {guess!r}? " if guess is not None else ""
    return ConfigError(f"{name!r} is not a field of {where}: {hint}({listing})")
