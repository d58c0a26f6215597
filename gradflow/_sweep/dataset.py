"""Slots (execution order) → one labelled `xarray.Dataset` over the grid axes."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from .._flow.solution import STATUS_NAMES
from .grid import Grid
from .store import Var

LONG_NAMES = {
    "loss": "loss on the save grid (nan after the solve ended)",
    "final_loss": "loss at t_final",
    "t_final": "time the solve ended (t1, stop or divergence time)",
    "status": "per-member status (success, stopped, max_steps, diverged, ..., pending)",
    "num_steps": "solver steps (accepted and rejected)",
    "num_rejected": "rejected solver steps",
    "num_grad_evals": "gradient evaluations (-1: not counted for this solver)",
    "plateau_count": "plateaus found by gf.analysis.plateaus on the loss record",
    "first_escape_time": "first drop: midpoint crossing between plateau 0 and 1 levels",
    "plateau_level": "loss at the flattest point of each plateau",
    "plateau_drop": "midpoint crossing to the next plateau's level",
    "crossing_time": "first time the watched scalar (default: the loss) crossed each level",
}


def assemble(
    grid: Grid,
    ts: np.ndarray,
    variables: list[Var],
    arrays: dict[str, np.ndarray],
    grid_index: np.ndarray,
    done: np.ndarray,
    attrs: dict,
) -> xr.Dataset:
    """Scatter finished slots to their grid positions; unfinished members are `pending`."""
    n, shape, dims = len(grid), grid.shape, grid.names
    keep = (grid_index >= 0) & done
    target = grid_index[keep]
    finished = np.zeros(n, dtype=bool)
    finished[target] = True
    data = {}
    for v in variables:
        out = np.full((n,) + v.shape, v.fill, dtype=v.dtype)
        out[target] = arrays[v.name][keep]
        out = out.reshape(shape + v.shape)
        if v.name == "status_code":
            names = np.asarray(STATUS_NAMES + ("pending",))
            code = np.where(finished.reshape(shape), out, len(STATUS_NAMES))
            data["status"] = (dims, names[code].astype(str), {"long_name": LONG_NAMES["status"]})
            continue
        attrs_v = {"long_name": LONG_NAMES[v.name]} if v.name in LONG_NAMES else {}
        data[v.name] = (dims + v.dims, out, attrs_v)
    coords = {k: (k, vals) for k, vals in grid.axes.items()}
    coords["time"] = ("time", np.asarray(ts), {"long_name": "gradient-flow time"})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in attrs.items()}
    )
    ds.attrs["num_pending"] = int(n - finished.sum())
    return ds
