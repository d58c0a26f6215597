"""Compare a discrete run (GD) with a flow on the same time axis."""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import numpy as np

from .plateaus import first_crossing


@dataclass
class Comparison:
    """What `compare` measures.

    - `levels`: the loss levels whose first crossings define the transitions.
    - `flow_times`, `run_times`: first crossing of each level (`nan` if never reached).
    - `time_error`: `run_times − flow_times`; `rel_time_error` divides by `flow_times`.
    - `t`, `loss_gap`: the run's save times and `L_run(t) − L_flow(t)` there (flow loss
      interpolated linearly in log time between its saves).
    - `param_distance`: ‖θ_run − θ_flow‖ at the final time if both ended at the same time,
      else `nan` (for a curve, save parameters at the same times, see `compare`).
    """

    levels: np.ndarray
    flow_times: np.ndarray
    run_times: np.ndarray
    time_error: np.ndarray
    rel_time_error: np.ndarray
    t: np.ndarray
    loss_gap: np.ndarray
    param_distance: float

    def __str__(self):
        rows = [f"{'level':>10} {'flow':>10} {'run':>10} {'rel.err':>9}"]
        for lv, a, b, e in zip(self.levels, self.flow_times, self.run_times, self.rel_time_error):
            rows.append(f"{lv:>10.5g} {a:>10.5g} {b:>10.5g} {e:>+9.2%}")
        rows.append(f"final parameter distance: {self.param_distance:.3g}")
        return "\n".join(rows)


def _interp_log_time(t_src, y_src, t_dst):
    t_src, y_src = np.asarray(t_src, float), np.asarray(y_src, float)
    ok = np.isfinite(t_src) & np.isfinite(y_src) & (t_src > 0)
    out = np.interp(np.log(np.maximum(t_dst, 1e-300)), np.log(t_src[ok]), y_src[ok])
    out[(t_dst < t_src[ok][0]) | (t_dst > t_src[ok][-1])] = np.nan
    return out


def _params(sol):
    return sol.params if sol.model is None else eqx.filter(sol.model, eqx.is_inexact_array)


def compare(flow_solution, run, *, levels=None) -> Comparison:
    """Transition-time differences, loss gap over time and parameter distance of `run`
    (e.g. `gf.gd(...)`) against `flow_solution` (e.g. `gf.flow(...)` from the same model).

    **Arguments:**

    - `levels`: loss levels defining the transitions (default: the midpoints between the
      plateau levels that `gf.analysis.plateaus` finds on the flow).
    """
    if levels is None:
        from .plateaus import plateaus

        lv = plateaus(flow_solution).level
        levels = 0.5 * (lv[:-1] + lv[1:])
    levels = np.atleast_1d(np.asarray(levels, float))
    tf, lf = np.asarray(flow_solution.t), np.asarray(flow_solution.loss)
    tr, lr_ = np.asarray(run.t), np.asarray(run.loss)
    flow_times = np.array([first_crossing(tf, lf, v) for v in levels])
    run_times = np.array([first_crossing(tr, lr_, v) for v in levels])
    err = run_times - flow_times
    gap = lr_ - _interp_log_time(tf, lf, tr)
    dist = np.nan
    if np.isclose(float(run.t_final), float(flow_solution.t_final), rtol=1e-12, atol=0):
        a = jax.tree.leaves(_params(flow_solution))
        b = jax.tree.leaves(_params(run))
        if len(a) == len(b):
            dist = float(
                np.sqrt(sum(np.sum((np.asarray(x) - np.asarray(y)) ** 2) for x, y in zip(a, b)))
            )
    return Comparison(levels, flow_times, run_times, err, err / flow_times, tr, gap, dist)
