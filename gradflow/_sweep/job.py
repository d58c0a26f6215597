r"""Configuration and build function of `gradflow sweep`: deep linear nets on a linear teacher.

A sweep config is the `gradflow run` teacher/network keys plus a `[grid]` table of axes:

```toml
name = "init-x-spectrum"
[network]
depth = 2
width = 8
t1 = 60.0
[grid]
init_scale = [1e-8, 1e-6, 1e-4, 1e-2]
spectrum_exponent = [0.5, 1.0, 2.0]   # teacher s_k = s_1 · k^(-a)
seed = [0, 1]
```

Grid axes: `init_scale`, `seed`, `width`, `depth`, `spectrum_exponent` (teacher
$s_k = s_1 k^{-a}$ with $s_1$ and the number of modes from `teacher.singular_values`) and
`gamma` (per-entry variance $w^{-\gamma}$, Jacot et al.; excludes `init_scale`). Unknown keys,
wrong types and bad values raise `ConfigError` (exit code 2) before any compute.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._config import (
    ConfigError,
    NetworkConfig,
    TeacherConfig,
    _build,
    _check_value,
    _coerce,
    check_shared,
    dumps,
    read_toml,
)

#: grid axes the CLI knows, with the type of one value
GRID_AXES = {
    "init_scale": float,
    "seed": int,
    "width": int,
    "depth": int,
    "spectrum_exponent": float,
    "gamma": float,
}


@dataclass
class SweepConfig:
    #: label stored in the dataset and the store fingerprint
    name: str = "sweep"
    seed: int = 0
    solver: str = "tsit5"
    rtol: float = 1e-6
    atol: float | None = None
    save_points: int = 100
    max_steps: int = 1_000_000
    #: members per vmapped solve (default: min(group size, 16 per device))
    chunk_size: int | None = None
    teacher: TeacherConfig = field(default_factory=lambda: TeacherConfig([4.0, 2.0, 1.0, 0.5]))
    network: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(depth=2, width=8, init_scale=1e-6, t1=60.0)
    )
    grid: dict = field(
        default_factory=lambda: {
            "init_scale": [1e-8, 1e-6, 1e-4, 1e-2],
            "spectrum_exponent": [0.5, 1.0, 2.0],
        }
    )


def _grid_from(table) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"grid must be a table of axes, got {type(table).__name__}.")
    out = {}
    for key, values in table.items():
        if key not in GRID_AXES:
            close = difflib.get_close_matches(key, list(GRID_AXES), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown grid axis 'grid.{key}'.{hint} Valid axes: {', '.join(GRID_AXES)}."
            )
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise ConfigError(f"grid.{key} is empty; list at least one value.")
        vals = [_coerce(f"grid.{key}[{i}]", GRID_AXES[key], v) for i, v in enumerate(values)]
        for i, v in enumerate(vals):
            _check_value(f"grid.{key}[{i}]", key, v)
            if key in ("spectrum_exponent", "gamma") and not math.isfinite(v):
                raise ConfigError(f"grid.{key}[{i}] must be finite, got {v!r}.")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"grid.{key} repeats a value: {vals}.")
        out[key] = vals
    if "gamma" in out and "init_scale" in out:
        raise ConfigError(
            "grid.gamma and grid.init_scale both set the init scale (σ² = width^-γ); "
            "keep one of them."
        )
    if not out:
        raise ConfigError("grid has no axes; add e.g. init_scale = [1e-6, 1e-3].")
    return out


def from_dict(table: dict) -> SweepConfig:
    """Build and validate a `SweepConfig` from a (TOML-parsed) dict."""
    table = dict(table)
    grid = table.pop("grid", None)
    cfg = _build(SweepConfig, table)
    cfg.grid = SweepConfig().grid if grid is None else _grid_from(grid)
    check_shared(cfg)
    if cfg.chunk_size is not None and cfg.chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {cfg.chunk_size}.")
    return cfg


def load(path: str | Path) -> SweepConfig:
    return from_dict(read_toml(path))


def make_build(cfg: SweepConfig):
    """`build(**point) -> (model, data)` for the grid of `cfg`."""
    import jax

    from .. import data as gdata
    from .. import models

    key = jax.random.key(cfg.seed)
    s_default = np.sort(np.asarray(cfg.teacher.singular_values, float))[::-1]

    def build(init_scale=None, seed=None, width=None, depth=None, spectrum_exponent=None,
              gamma=None):  # fmt: skip
        k = jax.random.fold_in(key, cfg.seed if seed is None else seed)
        k_data, k_model = jax.random.split(k)
        if spectrum_exponent is None:
            s = s_default
        else:
            s = gdata.power_law(s_default.size, spectrum_exponent, scale=float(s_default[0]))
        data = gdata.linear_teacher(
            s, in_size=cfg.teacher.in_size, out_size=cfg.teacher.out_size, key=k_data,
            rotate=cfg.teacher.rotate,
        )  # fmt: skip
        w = cfg.network.width if width is None else width
        d = cfg.network.depth if depth is None else depth
        if gamma is not None:
            scale = float(w) ** (-gamma / 2)
        else:
            scale = cfg.network.init_scale if init_scale is None else init_scale
        model = models.DeepLinear(data.in_size, w, data.out_size, d, scale, key=k_model)
        return model, data

    return build


def _meta(cfg: SweepConfig) -> dict:
    """What `build` depends on (fingerprinted); chunk_size is checked by the store itself."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "chunk_size"}


def run_sweep(cfg: SweepConfig, store=None, progress=None, **hosts):
    """Run the configured sweep through `gf.sweep`; returns the dataset."""
    from .. import analysis
    from .grid import Grid
    from .sweep import sweep

    ds = sweep(
        make_build(cfg), Grid(**cfg.grid), t1=cfg.network.t1, save=cfg.save_points,
        metrics={"rank": analysis.effective_rank}, solver=cfg.solver, rtol=cfg.rtol,
        atol=cfg.atol, max_steps=cfg.max_steps, chunk_size=cfg.chunk_size, store=store,
        name=cfg.name, meta=_meta(cfg), progress=progress, **hosts,
    )  # fmt: skip
    ds.attrs["sweep_config"] = dumps(cfg)
    ds.attrs["teacher_s1"] = float(max(cfg.teacher.singular_values))
    return ds
