r"""Quadratic network on the Gaussian-input teacher $y = x^\top T x$ (THEORY.md §1.6, V5).

$f(x) = \sum_i v_i (u_i^\top x)^2$ with the exact population loss.

- **Aligned** (V5): one balanced unit $u(0) = \sqrt2 v_0 e_1$, $v(0) = v_0$ keeps its alignment
  and balance, so the flow reduces exactly to $\dot v = 2v^2(\lambda_1 - 6v^3)$: a Type-III
  escape whose plateau is a power law, $\approx 1/(2\lambda_1 v_0)$. Measured: the midpoint
  crossing of the drop $L_0 \to L^* = L_0 - \lambda_1^2/6$ and the final loss. The exact
  crossing time (`gf.theory.quadratic_unit_escape_time`) agrees at every $v_0$; the
  leading-order blow-up time (`gf.theory.type3_blowup_time`) has a relative error $\propto v_0$.
- **Random**: `width` units with i.i.d. $N(0, \varepsilon^2)$ weights. The first drop is
  predicted by the earliest blow-up of the linearised flow (14) from the init's own weights
  (`gf.theory.quadratic_blowup_times`), relative error $\propto \varepsilon$; the flow then
  rests at the width-1 saddle $L^*$ with one grown unit (Proposition 5) before the next unit
  is recruited and the loss reaches 0.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import analysis, models, theory
from .. import data as gdata
from ._common import Outcome, Row, Solver, run_scales, save_grid, to_dataset


def _loss(model, t):
    return gdata.quadratic_population_loss(model, t)


def _units(model, t):
    return model.units()


METRICS = {"crossing": _loss}
METRICS_RANDOM = {"crossing": _loss, "units": _units}
#: a unit has grown once its norm is this many times the largest initial one (THEORY §9)
GROWN = 10.0


def run(cfg, log=print):
    diag = np.asarray(cfg.teacher, float)
    t_mat = jnp.diag(jnp.asarray(diag))
    dim = diag.size
    lam_yz = diag.sum() + 2 * diag  # eigenvalues of Σ_yZ = tr(T) I + 2T (eigenbasis: e_j)
    top = int(np.argmax(lam_yz))
    lam1 = float(lam_yz[top])
    level0 = 0.5 * (diag.sum() ** 2 + 2 * np.sum(diag**2))
    level1 = level0 - lam1**2 / 6.0  # the width-1 minimum: a saddle of wider nets
    mid = 0.5 * (level0 + level1)
    key = jax.random.key(cfg.seed)
    if cfg.init == "aligned":
        solve = Solver(cfg, t_mat, _loss, METRICS)
        base = models.TwoLayer(dim, 1, 1, "quadratic", init_scale=1.0, key=key)
    else:
        solve = Solver(cfg, t_mat, _loss, METRICS_RANDOM)

    def build_aligned(v0):
        e1 = jnp.zeros((1, dim)).at[0, top].set(np.sqrt(2.0) * v0)
        model = eqx.tree_at(lambda m: (m.w, m.a), base, (e1, jnp.full((1, 1), v0)))
        exact = float(theory.quadratic_unit_escape_time(v0, lam1))
        blowup = float(theory.type3_blowup_time(2 * lam1, v0))
        ts = save_grid(cfg.horizon * exact, cfg.save_points, 1e-4 * exact)
        sol = solve(model, ts, crossings=[mid])
        t, loss = np.asarray(sol.t), np.asarray(sol.loss)
        (cross,) = np.asarray(sol.crossings)
        rows = [
            Row("drop time (midpoint crossing)", cross, exact, "reduced ODE, exact"),
            Row("drop time vs 1/(2λ₁v₀)", cross, blowup, "leading order, error ∝ v₀"),
            Row("final loss (width-1 saddle)", float(loss[-1]), level1, "L₀ − λ₁²/6"),
        ]
        th_t = np.array([0.0, exact, exact, t[-1]])
        th_l = np.array([level0, level0, level1, level1])
        return Outcome(v0, t, loss, th_t, th_l, rows, sol.status, int(sol.stats["num_steps"]), 0.0)

    def build_random(eps):
        model = models.TwoLayer(dim, cfg.width, 1, "quadratic", init_scale=eps, key=key)
        v0, u0 = np.asarray(model.a)[0], np.asarray(model.w)
        first = float(np.min(theory.quadratic_blowup_times(v0, u0, lam_yz)))
        # after the first saddle the next unit needs a few times longer (THEORY §1.6)
        ts = save_grid(3.0 * cfg.horizon * first, cfg.save_points, 1e-4 * first)
        sol = solve(model, ts, crossings=[mid, 0.5 * level1])
        t, loss = np.asarray(sol.t), np.asarray(sol.loss)
        drops = np.asarray(sol.crossings)
        plateau = analysis.plateaus(t=t, loss=loss, levels=[level0, level1, 0.0])
        units = np.asarray(sol.metrics["units"])
        centre = np.sqrt(drops[0] * drops[1]) if np.all(np.isfinite(drops)) else np.nan
        grown = np.nan
        if np.isfinite(centre):
            on = units[int(np.searchsorted(t, centre))]
            grown = float(np.sum(on > GROWN * units[0].max()))
        rows = [
            Row("drop 1 time vs earliest blow-up of (14)", drops[0], first,
                "linearised flow from the init, error ∝ ε"),
            Row("plateau 1 level (width-1 saddle)", plateau.level[1], level1, "L₀ − λ₁²/6"),
            Row("units grown on plateau 1", grown, 1.0, "one unit at a time (Prop. 5)"),
            Row("final loss / L₀", float(loss[-1]) / level0, 0.0,
                f"0 once {int(np.sum(diag != 0))} units are recruited", distance=True),
        ]  # fmt: skip
        th_t = np.array([0.0, first, first, t[-1]])
        th_l = np.array([level0, level0, level1, level1])
        return Outcome(
            eps, t, loss, th_t, th_l, rows, sol.status, int(sol.stats["num_steps"]), 0.0
        )

    build = build_aligned if cfg.init == "aligned" else build_random
    outcomes = run_scales(cfg, build, log)
    units = "one aligned balanced unit" if cfg.init == "aligned" else f"{cfg.width} random units"
    return to_dataset(
        cfg, outcomes,
        title=(
            f"quadratic net v(uᵀx)², T = diag{tuple(diag.tolist())}, {units}; "
            f"λ₁ = {lam1:g}, levels {level0:g} → {level1:.6g}"
        ),
        expectation=(
            "aligned: exact crossing time and final level at every v₀ (solver accuracy), the "
            "leading-order blow-up time 1/(2λ₁v₀) with relative error ∝ v₀"
            if cfg.init == "aligned" else
            "random: first drop an O(1) time before the earliest blow-up (relative error ∝ ε), "
            "the width-1 saddle level with one grown unit, then zero loss"
        ),
        loss_label="population loss ½E(f − y)²",
    )  # fmt: skip
