r"""Separate key–query rank-1 linear attention: saddle to saddle, one eigenvector per drop (V9).

Population loss with $\Lambda = \mathrm{diag}(\lambda_1, \dots, \lambda_D)$. The plateaus are
Eq. (19) (`gf.theory.attention_plateau_losses`). With the aligned init (head $i$:
$k_i = q_i = v_0 e_i$, $v_i = v_0$; heads beyond $D$ zero) $A$ stays diagonal, every head keeps
$k_i = q_i = v_i e_i$ and follows the scalar ODE (21) from $v_0$, so drop $m$ — the midpoint
crossing between plateaus $m - 1$ and $m$, reached when head $m$ has half its gain,
$v = (1 - 1/\sqrt2)^{1/3} v^*$ — comes at `gf.theory.attention_escape_time`; the other heads
are still $O(v_0)$ then. The leading Type-III term $1/(\lambda_m^2 v_0)$ has a relative error
$\propto v_0$. A random init is compared on the plateau levels only. Losses in the paper's
convention $E(y_q - \hat y_q)^2$ (twice gradflow's ½-loss); time is $t/\tau$.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import analysis, models, theory
from .. import data as gdata
from ._common import Outcome, Row, Solver, run_scales, save_grid, to_dataset


def _loss(model, task):
    return gdata.in_context_population_loss(model, task)


METRICS = {"crossing": _loss}
#: fraction of v* at which a head has half its loss gain: 2x − x² = ½ for x = (v/v*)³
HALF_GAIN = (1.0 - 1.0 / np.sqrt(2.0)) ** (1.0 / 3.0)


def _aligned(model, v0):
    h, d = model.num_heads, model.dim
    on = jnp.arange(h) < d
    value = jnp.where(on, v0, 0.0)
    kq = jnp.zeros((h, d, 1)).at[jnp.arange(d), jnp.arange(d), 0].set(v0)
    return eqx.tree_at(lambda m: (m.value, m.wk, m.wq), model, (value, kq, kq))


def run(cfg, log=print):
    lam = np.asarray(cfg.eigenvalues, float)
    d, n = lam.size, cfg.context
    order = np.argsort(-lam)  # drops come largest eigenvalue first
    task = gdata.InContextTask(lam, n)
    levels = theory.attention_plateau_losses(lam, n)
    mids = 0.5 * (levels[:-1] + levels[1:])
    v_star = theory.attention_plateau_weights(lam, n)  # descending order
    solve = Solver(cfg, task, _loss, METRICS)
    trace = lam.sum()

    def build(v0):
        model = models.SeparateAttention(d, cfg.heads, 1, v0, key=jax.random.key(cfg.seed))
        lam_sorted = lam[order]
        if cfg.init == "aligned":
            model = _aligned(model, v0)
            exact = np.asarray(
                theory.attention_escape_time(lam_sorted, trace, n, v0, HALF_GAIN * v_star)
            )
            lead = 1.0 / (lam_sorted**2 * v0)
        else:  # no closed form for the escape of a random init: levels only
            exact = lead = np.full(d, np.nan)
        # a random init's heads start smaller than v0 along their eigenvector: allow 3×
        t_last = exact[-1] if cfg.init == "aligned" else 3.0 / (lam_sorted[-1] ** 2 * v0)
        ts = save_grid(cfg.horizon * t_last, cfg.save_points, 1e-4 * t_last)
        sol = solve(model, ts, crossings=[float(x) for x in mids / 2.0])  # gradflow's ½-loss
        t = np.asarray(sol.t)
        loss = 2.0 * np.asarray(sol.loss)
        drops = np.asarray(sol.crossings)
        measured_levels = analysis.plateaus(t=t, loss=loss, levels=levels).level
        rows = []
        for m in range(d):
            rows.append(Row(f"drop {m + 1} time t/τ (λ = {lam_sorted[m]:g})", drops[m], exact[m],
                            "scalar ODE (21)"))  # fmt: skip
            rows.append(Row(f"drop {m + 1} vs 1/(λ²v₀)", drops[m], lead[m], "leading order ∝ v₀"))
        for m in range(d + 1):
            rows.append(Row(f"plateau {m} level", measured_levels[m], levels[m], "Eq. (19)"))
        if cfg.init == "aligned":
            th_t = np.concatenate([[0.0], np.repeat(exact, 2), [t[-1]]])
        else:
            th_t = np.concatenate([[0.0], np.repeat(drops, 2), [t[-1]]])
        th_l = np.repeat(levels, 2)
        return Outcome(v0, t, loss, th_t, th_l, rows, sol.status, int(sol.stats["num_steps"]), 0.0)

    outcomes = run_scales(cfg, build, log)
    return to_dataset(
        cfg, outcomes,
        title=(
            f"separate key–query rank-1 linear attention, D = {d}, N = {n}, {cfg.heads} heads, "
            f"Λ = diag{tuple(lam.tolist())}, {cfg.init} init; population loss"
        ),
        expectation=(
            "plateau levels of Eq. (19) at every scale; aligned init: drop times of the "
            "scalar ODE (21) exact up to O(v₀) head interactions, the leading term "
            "1/(λ²v₀) with relative error ∝ v₀"
        ),
        loss_label="in-context loss E(y_q − ŷ_q)²",
        time_label="t/τ",
    )  # fmt: skip
