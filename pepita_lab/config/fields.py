"""What the lab derives from the fields' declarations: names, defaults, docs, kinds (how the
CLI and sweeps read them), member and identity fields, and a value read from text."""

from __future__ import annotations

import dataclasses

from .facts import ConfigError
from .names import nearest, unknown_name
from .run import RunConfig


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig)]


def suggest_field(name: str) -> str | None:
    """The `RunConfig` field `name` most likely means (`learnig_rate` -> `lr`, `f_scle` ->
    `f_scale`, `batch` -> `batch_size`), or None: for an error on an unknown field name."""
    return nearest(name, field_names())


def unknown_field(name: str, where: str = "RunConfig") -> ConfigError:
    """The ConfigError for an unknown field `name` given to `where` (a function's or a
    file's name): `'f_scle' is not a field of train_grid: did you mean 'f_scale'? ...`."""
    return unknown_name(name, where, field_names())


def field_default(name: str):
    """Field `name`'s default value."""
    return _DEFAULTS[name]


def field_doc(name: str) -> str:
    return _FIELDS[name].metadata["doc"]


def field_join(name: str) -> str:
    """The separator of a tuple field's values in a record's coordinate."""
    return _FIELDS[name].metadata["join"]


def field_kind(name: str) -> str:
    """The type of field `name` as the CLI and sweeps read it: "bool", "int", "float", "str",
    "ints" (a tuple of integers), "int?" / "str?" (may be None)."""
    return _KINDS[_FIELDS[name].type]


# Member fields: the settings population members may differ in (each member's own seed,
# initial F and feedback, learning-rate schedule and modulation sign); all others are shared.
MEMBER_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.metadata["member"])


# Identity fields: what changes a run's numbers; each is a coordinate of the run's records.
IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.metadata["identity"])


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


_DEFAULTS = {
    f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
    for f in dataclasses.fields(RunConfig)}


_KINDS = {"bool": "bool", "int": "int", "float": "float", "str": "str",
          "tuple[int, ...]": "ints", "int | None": "int?", "str | None": "str?"}


def parse_field(name: str, text: str):
    """A command-line / sweep value of field `name` read as the field's type (widths as
    `256x128` or `256,128`; booleans as true/false/yes/no/1/0; `none` for optional fields);
    ConfigError naming the field otherwise. Values are checked when the config is made."""
    if name not in _FIELDS:
        raise unknown_field(name, "a config (read from text)")
    kind, text = field_kind(name), str(text).strip()
    if kind.endswith("?") and text.lower() == "none":
        return None
    try:
        if kind == "ints":
            return tuple(int(v) for v in text.replace(",", "x").split("x") if v.strip())
        if kind == "bool":
            return {"true": True, "yes": True, "1": True, "false": False, "no": False,
                    "0": False}[text.lower()]
        if kind.startswith("int"):
            return int(text)
        if kind == "float":
            return float(text)
    except (ValueError, KeyError):
        expected = {"ints": "integers like 256x128", "bool": "true or false",
                    "float": "a number"}.get(kind, "an integer")
        raise ConfigError(f"{name}={text!r} is not allowed: expected {expected}") from None
    return text
