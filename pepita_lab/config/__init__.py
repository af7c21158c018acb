"""Run configuration, presets and checks: where a config is made, it is checked.

A `RunConfig` is a frozen value, checked when it is made (`checks.ALLOWED` declares what each
field takes; `checked_values` checks them and the fields that need each other, without
changing its input): an invalid value or an unknown field name (the nearest field named:
`suggest_field`) is a one-line ConfigError naming the field, whatever builds the config (the
CLI, the Python API, the widgets, sweeps). It remembers the fields that were set
(`RunConfig.set_fields`), so that `pepita_lab.rules.resolve`, the one door into training,
puts a rule's own settings in the others only and refuses what needs the registered rules.

The rooms: `facts` (datasets, allowed values, limits, ConfigError), `checks` (ALLOWED,
checked_values), `names` (the nearest of misspelled names), `run` (RunConfig and `setting`),
`fields` (what is derived from the declarations: kinds, member and identity fields, values
read from text, suggestions), `presets` (the paper's settings, `preset`). This package imports
nothing else of pepita_lab. `python -m pepita_lab.config` lists the fields.
"""

from .checks import check_fields, check_int
from .facts import (COMPILE_MODES, CONV_FIELDS, CONV_UPDATES, DATASETS, DEVICES,
                    F_DISTRIBUTIONS, IMAGE_SHAPES, INITS, INPUT_SIZES, MAX_EPOCHS, MAX_INT,
                    MAX_SEED, MODELS, MOMENTUM_STYLES, N_CLASSES, OUTPUT_ERRORS,
                    PEPITA_VARIANTS, PRECISIONS, SPLIT_SIZES, TIME_LOCAL_MASKS, ConfigError)
from .fields import (IDENTITY_FIELDS, MEMBER_FIELDS, field_default, field_doc, field_join,
                     field_kind, field_names, parse_field, suggest_field, unknown_field)
from .presets import PRESETS, preset
from .run import RunConfig, setting

__all__ = ["RunConfig", "ConfigError", "PRESETS", "preset", "check_fields", "check_int",
           "suggest_field", "unknown_field",
           "setting", "parse_field", "field_names", "field_doc", "field_kind", "field_join",
           "field_default", "MEMBER_FIELDS", "IDENTITY_FIELDS", "DATASETS", "IMAGE_SHAPES",
           "N_CLASSES", "INPUT_SIZES", "SPLIT_SIZES", "DEVICES", "OUTPUT_ERRORS",
           "F_DISTRIBUTIONS", "INITS", "MOMENTUM_STYLES", "PEPITA_VARIANTS", "TIME_LOCAL_MASKS",
           "MODELS", "CONV_UPDATES", "CONV_FIELDS", "PRECISIONS", "COMPILE_MODES", "MAX_SEED",
           "MAX_EPOCHS", "MAX_INT"]
