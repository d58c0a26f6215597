r"""Diagonal linear network on sparse regression: Pesme–Flammarion jumps (THEORY.md §8).

$\beta = u \odot v$ from $u = \sqrt2\alpha$, $v = 0$. As $\alpha \to 0$, in accelerated time
$\tilde t = t/\ln(1/\alpha)$ the flow sits at the saddles $\beta_k$ of
`gf.theory.diagonal_linear_jumps` and jumps at $\tilde t_k$. Measured: the jump times (first
crossing of the midpoint between consecutive saddle losses, in units of $\ln(1/\alpha)$), the
loss and $\beta$ in the middle of each plateau. Expected: relative errors of order
$1/\ln(1/\alpha)$ for the times, shrinking with $\alpha$.
"""

from __future__ import annotations

import jax
import numpy as np

from .. import data as gdata
from .. import losses, models, theory
from ._common import Outcome, Row, Solver, run_scales, save_grid, to_dataset


def _loss(model, data):
    return losses.mse(model, data)


def _beta(model, data):
    return model.beta()


METRICS = {"crossing": _loss, "beta": _beta}


def _at(t, values, when):
    """`values` (rows at times `t`) linearly interpolated at time `when`."""
    t = np.asarray(t, float)
    return np.array([np.interp(when, t, np.asarray(values)[:, j]) for j in range(values.shape[1])])


def run(cfg, log=print):
    data = gdata.sparse_regression(cfg.n, cfg.d, cfg.k, key=jax.random.key(cfg.seed))
    x, y = np.asarray(data.x), np.asarray(data.y)[:, 0]
    jumps, saddles = theory.diagonal_linear_jumps(x, y)
    levels = np.array([0.5 * np.mean(y**2)] + [0.5 * np.mean((x @ b - y) ** 2) for b in saddles])
    mids = 0.5 * (levels[:-1] + levels[1:])
    solve = Solver(cfg, data, _loss, METRICS)
    t_end = cfg.horizon * jumps[-1]
    centres = np.append(0.5 * (jumps[:-1] + jumps[1:]), t_end)

    def build(alpha):
        scale = float(np.log(1.0 / alpha))
        model = models.DiagonalLinear(cfg.d, alpha)
        ts = save_grid(t_end * scale, cfg.save_points, 1e-3 * jumps[0] * scale)
        sol = solve(model, ts, crossings=[float(x) for x in mids])
        t, loss = np.asarray(sol.t), np.asarray(sol.loss)
        measured = np.asarray(sol.crossings) / scale
        beta = np.asarray(sol.metrics["beta"])
        rows = [
            Row(f"jump {k + 1} time t/ln(1/α)", measured[k], jumps[k], "Pesme–Flammarion limit")
            for k in range(jumps.size)
        ]
        for k, c in enumerate(centres):
            b = _at(t, beta, c * scale) if k < jumps.size - 1 else beta[-1]
            dist = np.linalg.norm(b - saddles[k]) / np.linalg.norm(saddles[k])
            if levels[k + 1] > 1e-12 * levels[0]:
                rows.append(
                    Row(f"saddle {k + 1} loss (t̃ = {c:.3g})", float(np.interp(c * scale, t, loss)),
                        levels[k + 1], "L(β_k), sign-constrained LS")
                )  # fmt: skip
            rows.append(
                Row(f"saddle {k + 1} ‖β − β_k‖/‖β_k‖", dist, 0.0, "β_k, sign-constrained LS",
                    distance=True)
            )  # fmt: skip
        grid = np.geomspace(1e-3 * jumps[0], t_end, cfg.save_points)
        step = levels[np.searchsorted(jumps, grid, side="right")]
        return Outcome(
            alpha, t, loss, grid * scale, step, rows, sol.status, int(sol.stats["num_steps"]),
            0.0, time_scale=scale,
        )  # fmt: skip

    outcomes = run_scales(cfg, build, log)
    return to_dataset(
        cfg, outcomes,
        title=(
            f"diagonal linear network β = u ⊙ v, sparse regression n = {cfg.n}, d = {cfg.d}, "
            f"k = {cfg.k}; {jumps.size} jumps predicted"
        ),
        expectation="jump-time errors of relative order 1/ln(1/α), shrinking as α → 0",
        time_label="gradient-flow time t (plot: t/ln(1/α))",
    )  # fmt: skip
