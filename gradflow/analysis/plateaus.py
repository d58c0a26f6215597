"""Plateau detection on log time, for flows and GD runs alike."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PlateauTable:
    """Measured plateaus, optionally beside predictions.

    **Fields** (1-D arrays, one entry per plateau, in time order):

    - `level`: the loss at the flattest point of the plateau.
    - `start`, `end`: where the loss curve is flat on log time (|dL/d ln t| below a fraction of
      the total drop).
    - `drop`: the first time the loss crosses the midpoint between this plateau's level and
      the next one's (`nan` for the last plateau) — the "drop time" of VALIDATION.md.
    - `predicted_level`, `predicted_drop`: theory columns (`nan` where not given).
    """

    level: np.ndarray
    start: np.ndarray
    end: np.ndarray
    drop: np.ndarray
    predicted_level: np.ndarray = field(default=None)
    predicted_drop: np.ndarray = field(default=None)

    def __post_init__(self):
        n = len(self.level)
        if self.predicted_level is None:
            self.predicted_level = np.full(n, np.nan)
        if self.predicted_drop is None:
            self.predicted_drop = np.full(n, np.nan)

    def __len__(self):
        return len(self.level)

    @property
    def duration(self) -> np.ndarray:
        return self.end - self.start

    def to_dict(self) -> dict[str, np.ndarray]:
        return {
            "level": self.level, "start": self.start, "end": self.end, "drop": self.drop,
            "predicted_level": self.predicted_level, "predicted_drop": self.predicted_drop,
        }  # fmt: skip

    def __str__(self) -> str:
        def rel(a, b):
            return f"{(a - b) / b:+.2%}" if np.isfinite(a) and np.isfinite(b) and b != 0 else ""

        head = (
            f"{'#':>2} {'level':>10} {'predicted':>10} {'rel.err':>8} {'start':>10} {'end':>10}"
            f" {'drop':>10} {'predicted':>10} {'rel.err':>8}"
        )
        rows = [head, "-" * len(head)]
        for i in range(len(self)):
            lv, pl, dr, pd = (
                self.level[i],
                self.predicted_level[i],
                self.drop[i],
                self.predicted_drop[i],
            )
            rows.append(
                f"{i:>2} {lv:>10.5g} {pl:>10.5g} {rel(lv, pl):>8} {self.start[i]:>10.4g} "
                f"{self.end[i]:>10.4g} {dr:>10.5g} {pd:>10.5g} {rel(dr, pd):>8}"
            )
        return "\n".join(rows)


def first_crossing(t, y, level) -> float:
    """First time `y` falls to `level`, linearly interpolated between saves (`nan` if never)."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    below = np.flatnonzero(y <= level)
    if below.size == 0:
        return np.nan
    i = below[0]
    if i == 0:
        return float(t[0])
    t0, t1, y0, y1 = t[i - 1], t[i], y[i - 1], y[i]
    return float(t0 + (t1 - t0) * (y0 - level) / (y0 - y1)) if y0 != y1 else float(t1)


def plateaus(
    sol=None,
    *,
    t=None,
    loss=None,
    levels=None,
    drops=None,
    flat: float = 0.02,
    min_duration: float = 0.15,
    merge: float = 0.02,
) -> PlateauTable:
    r"""Find the plateaus of a loss curve on log time.

    A point is flat where $|dL/d\ln t| <$ `flat` × (total drop $L_{max} - L_{min}$). Drops
    between saddles are short on log time as well as on linear time, while plateaus last
    a sizeable fraction of a decade, so this criterion does not depend on the init scale.
    Flat runs shorter than `min_duration` (in $\ln t$) are ignored; neighbouring plateaus whose
    levels differ by less than `merge` × total drop are merged.

    **Arguments:**

    - `sol`: a `FlowSolution` (or GD run); alternatively pass `t=` and `loss=` arrays.
    - `levels`: predicted plateau levels, descending (e.g. `gf.theory.plateau_levels(s)`).
      Then plateau k is measured inside the band of losses between the midpoints to its
      neighbouring predicted levels: its level is the loss at the flattest point of the band,
      start/end are where the curve enters/leaves the band, and its drop is the first
      crossing of the midpoint below it (VALIDATION.md conventions). Plateaus whose band the
      curve never enters are reported as `nan`. This also measures short plateaus that the
      log-slope criterion alone would miss.
    - `drops`: predicted drop times (one per level but the last), shown beside the measured ones.

    A drop is the first crossing of a midpoint level. If `sol` recorded that level with
    `crossings=` (root finding during the solve, see [`gradflow.flow`][]), the recorded
    time is used; otherwise the crossing is interpolated linearly between saves. With
    predicted `levels`, pass `crossings=gf.analysis.drop_levels(levels)` to the solve to
    get exact drop times.

    **Returns:**

    A `PlateauTable` (`level`, `start`, `end`, `drop`, predicted columns); print it for a table.
    """
    recorded = {}
    if sol is not None:
        t, loss = sol.t, sol.loss
        if getattr(sol, "crossing_levels", None) is not None and np.ndim(sol.crossings) == 1:
            recorded = dict(zip(sol.crossing_levels, np.asarray(sol.crossings, float)))
    if t is None or loss is None:
        raise ValueError("plateaus: pass a solution, or both t= and loss= arrays.")
    t, loss = np.asarray(t, float), np.asarray(loss, float)
    ok = np.isfinite(t) & np.isfinite(loss) & (t > 0)
    t, loss = t[ok], loss[ok]
    if t.size < 4:
        raise ValueError("plateaus: need at least 4 saved points at t > 0.")
    order = np.argsort(t)
    t, loss = t[order], loss[order]
    t, idx = np.unique(t, return_index=True)
    loss = loss[idx]
    # uniform grid in ln t so that derivatives and durations are comparable everywhere
    lt = np.log(t)
    grid = np.linspace(lt[0], lt[-1], max(4 * t.size, 400))
    curve = np.interp(grid, lt, loss)
    span = max(curve.max() - curve.min(), 1e-300)
    slope = np.abs(np.gradient(curve, grid)) / span
    crossing = functools.partial(_crossing, recorded, t, loss)
    if levels is not None:
        table = _by_levels(np.asarray(levels, float), crossing, grid, curve, slope)
        if drops is not None:
            pd = np.full(len(table), np.nan)
            d = np.asarray(drops, float)[: len(table)]
            pd[: d.size] = d
            table.predicted_drop = pd
        return table
    is_flat = slope < flat
    runs, i = [], 0
    while i < grid.size:
        if is_flat[i]:
            j = i
            while j + 1 < grid.size and is_flat[j + 1]:
                j += 1
            if grid[j] - grid[i] >= min_duration or (i == 0 or j == grid.size - 1) and j > i:
                k = i + int(np.argmin(slope[i : j + 1]))
                runs.append([curve[k], grid[i], grid[j]])
            i = j + 1
        else:
            i += 1
    merged: list[list[float]] = []
    for run in runs:
        if merged and abs(run[0] - merged[-1][0]) < merge * span:
            merged[-1][2] = run[2]
        else:
            merged.append(run)
    level = np.array([r[0] for r in merged])
    start = np.exp(np.array([r[1] for r in merged]))
    end = np.exp(np.array([r[2] for r in merged]))
    drop = np.full(level.size, np.nan)
    for k in range(level.size - 1):
        drop[k] = crossing(0.5 * (level[k] + level[k + 1]))
    return PlateauTable(level, start, end, drop)


def drop_levels(levels) -> np.ndarray:
    """The midpoints between consecutive plateau `levels`: whose first crossings are the
    drop times of `plateaus(sol, levels=levels)`. Pass them as `crossings=` to the solve to
    have them located by root finding."""
    levels = np.asarray(levels, float)
    return 0.5 * (levels[:-1] + levels[1:])


def _crossing(recorded: dict, t, loss, level) -> float:
    """The recorded crossing time of `level` if the solve recorded it, else interpolated."""
    for lv, when in recorded.items():
        if abs(lv - level) <= 1e-12 * max(abs(level), 1e-300):
            return float(when)
    return first_crossing(t, loss, level)


def _by_levels(levels, crossing, grid, curve, slope) -> PlateauTable:
    """Measure one plateau per predicted level, inside its band of losses."""
    if np.any(np.diff(levels) > 0):
        raise ValueError("plateaus: `levels` must be in descending order (plateau 0 first).")
    n = levels.size
    mids = 0.5 * (levels[:-1] + levels[1:])
    upper = np.concatenate([[np.inf], mids])
    lower = np.concatenate([mids, [-np.inf]])
    out = {k: np.full(n, np.nan) for k in ("level", "start", "end", "drop")}
    for k in range(n):
        inside = (curve <= upper[k]) & (curve > lower[k])
        if not inside.any():
            continue
        idx = np.flatnonzero(inside)
        j = idx[np.argmin(slope[idx])]
        out["level"][k] = curve[j]
        out["start"][k] = np.exp(grid[idx[0]])
        out["end"][k] = np.exp(grid[idx[-1]])
        if k < n - 1:
            out["drop"][k] = crossing(mids[k])
    return PlateauTable(**out, predicted_level=levels.copy())
