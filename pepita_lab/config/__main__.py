"""`python -m pepita_lab.config`: every RunConfig field, its type, default and doc."""

import dataclasses

from .run import RunConfig

for f in dataclasses.fields(RunConfig):
    print(f"{f.name} ({f.type}, default {getattr(RunConfig(), f.name)!r}): {f.metadata['doc']}")
