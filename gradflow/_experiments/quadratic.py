r"""Quadratic network, one balanced unit aligned with the top eigenvector (VALIDATION V5).

$f(x) = v\,(u^\top x)^2$ on the Gaussian-input teacher $y = x^\top T x$ (exact population
loss). From $u(0) = \sqrt2 v_0 e_1$, $v(0) = v_0$ alignment and balance are conserved and the
flow reduces exactly to $\dot v = 2v^2(\lambda_1 - 6v^3)$ (THEORY.md §1.6): a Type-III escape
whose plateau is a power law, $\approx 1/(2\lambda_1 v_0)$. Measured: the midpoint crossing of
the drop $L_0 \to L^* = L_0 - \lambda_1^2/6$ and the final loss. The exact crossing time
(`gf.theory.quadratic_unit_escape_time`) agrees at every $v_0$; the leading-order blow-up time
(`gf.theory.type3_blowup_time`) has a relative error $\propto v_0$.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import data as gdata
from .. import models, theory
from ._common import Outcome, Row, Solver, crossings, run_scales, save_grid, to_dataset


def _loss(model, t):
    return gdata.quadratic_population_loss(model, t)


METRICS = {"crossing": _loss}


def run(cfg, log=print):
    diag = np.asarray(cfg.teacher, float)
    t_mat = jnp.diag(jnp.asarray(diag))
    dim = diag.size
    lam_yz = diag.sum() + 2 * diag  # eigenvalues of Σ_yZ = tr(T) I + 2T
    top = int(np.argmax(lam_yz))
    lam1 = float(lam_yz[top])
    level0 = 0.5 * (diag.sum() ** 2 + 2 * np.sum(diag**2))
    level1 = level0 - lam1**2 / 6.0  # the width-1 minimum: a saddle of wider nets
    mid = 0.5 * (level0 + level1)
    solve = Solver(cfg, t_mat, _loss, METRICS)
    base = models.TwoLayer(dim, 1, 1, "quadratic", init_scale=1.0, key=jax.random.key(cfg.seed))

    def build(v0):
        e1 = jnp.zeros((1, dim)).at[0, top].set(np.sqrt(2.0) * v0)
        model = eqx.tree_at(lambda m: (m.w, m.a), base, (e1, jnp.full((1, 1), v0)))
        exact = float(theory.quadratic_unit_escape_time(v0, lam1))
        blowup = float(theory.type3_blowup_time(2 * lam1, v0))
        ts = save_grid(cfg.horizon * exact, cfg.save_points, 1e-4 * exact)
        sol = solve(model, ts)
        t, loss = np.asarray(sol.t), np.asarray(sol.loss)
        (cross,) = crossings(solve, model, t, loss, [mid])
        rows = [
            Row("drop time (midpoint crossing)", cross, exact, "reduced ODE, exact"),
            Row("drop time vs 1/(2λ₁v₀)", cross, blowup, "leading order, error ∝ v₀"),
            Row("final loss (width-1 saddle)", float(loss[-1]), level1, "L₀ − λ₁²/6"),
        ]
        th_t = np.array([0.0, exact, exact, t[-1]])
        th_l = np.array([level0, level0, level1, level1])
        return Outcome(v0, t, loss, th_t, th_l, rows, sol.status, int(sol.stats["num_steps"]), 0.0)

    outcomes = run_scales(cfg, build, log)
    return to_dataset(
        cfg, outcomes,
        title=(
            f"quadratic unit v(uᵀx)², T = diag{tuple(diag.tolist())}, aligned balanced init; "
            f"λ₁ = {lam1:g}, levels {level0:g} → {level1:.6g}"
        ),
        expectation=(
            "exact crossing time and final level at every v₀ (solver accuracy); the "
            "leading-order blow-up time 1/(2λ₁v₀) with relative error ∝ v₀"
        ),
        loss_label="population loss ½E(f − y)²",
    )  # fmt: skip
