"""The experiment kinds of `gradflow run`, one small module each (the default deep linear
staircase lives in `gradflow._experiment`).

Each module has `run(cfg, log) -> xarray.Dataset` (curves and the measured-vs-predicted table,
built from `gf.models`, `gf.data`, `gf.flow` and `gf.theory`); `_common.report` prints it.
Modules are imported on demand so that reading a config does not import JAX.
"""

from __future__ import annotations

import importlib

KINDS = (
    "deep_linear",
    "diagonal",
    "quadratic",
    "relu_three_points",
    "attention_merged",
    "attention_separate",
)


def kind_module(kind: str):
    """The module implementing `kind` (not deep_linear)."""
    return importlib.import_module(f".{kind}", __name__)
