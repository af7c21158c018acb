"""Run configuration, presets and validation: the one place where bad input is refused.

Each field is checked here (`check_fields`: types, ranges, choices), whatever builds the
`RunConfig` (the CLI, the Python API, the widgets); what needs the rules (the rule's name, the
options and nets it takes) is checked above them, by `pepita_lab.rules.validate`, the one door
into training, which calls `check_fields` first. An error reads the same wherever it comes from:
it names the field, the value and what is allowed.

The rooms: `facts` (datasets, allowed values, limits, ConfigError), `run` (RunConfig and
`setting`), `checks` (check_fields), `fields` (what is derived from the declarations: kinds,
member and identity fields, values read from text), `presets` (the paper's settings). This
package imports nothing else of pepita_lab. `python -m pepita_lab.config` lists the fields.
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
