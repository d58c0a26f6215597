r"""Two-layer bias-ReLU net on the Boursier–Flammarion three points: early alignment traps
the flow at the affine least-squares fit (THEORY.md §4).

Balanced init: $w_j, b_j \sim N(0, \lambda^2/m)$, $a_j = \pm\|(w_j, b_j)\|$. At small $\lambda$
every large neuron aligns with a direction active on all three points, so the network is
affine on the data and converges to the affine least-squares fit
(`gf.theory.boursier_spurious_fit`, non-zero loss) although zero loss is reachable; at larger
$\lambda$ (≈ 0.3–1 for $m = 200$) kinks land between the points and the loss goes to zero.
Measured: the final loss, the final predictions at the three points and the number of large
neurons whose kink $-b_j/w_j$ lies inside the data interval.
"""

from __future__ import annotations

import jax
import numpy as np

from .. import data as gdata
from .. import losses, models, theory
from ._common import Outcome, Row, Solver, run_scales, save_grid, to_dataset

#: a neuron counts as large when its norm exceeds this fraction of the largest one
LARGE = 0.1


def _loss(model, data):
    return losses.mse(model, data)


METRICS = {"crossing": _loss}


def _inner_kinks(model, lo, hi) -> int:
    w, b, a = (np.asarray(x) for x in (model.w[:, 0], model.b, model.a[0]))
    norm = np.sqrt(w**2 + b**2 + a**2)
    large = norm > LARGE * norm.max()
    with np.errstate(divide="ignore", invalid="ignore"):
        kink = -b / w
    return int(np.sum(large & (kink > lo) & (kink < hi)))


def run(cfg, log=print):
    data = gdata.boursier_three_points()
    x, y = np.asarray(data.x)[:, 0], np.asarray(data.y)[:, 0]
    slope, intercept, fit_loss = theory.boursier_spurious_fit(x, y)
    fit = slope * x + intercept
    solve = Solver(cfg, data, _loss, METRICS)
    k_model, k_init = jax.random.split(jax.random.key(cfg.seed))
    base = models.TwoLayer(1, cfg.width, 1, "relu", bias=True, init_scale=1.0, key=k_model)

    def build(lam):
        model = models.init.balanced(base, lam / np.sqrt(cfg.width), key=k_init)
        ts = save_grid(cfg.t1, cfg.save_points, 1e-4 * cfg.t1)
        sol = solve(model, ts)
        t, loss = np.asarray(sol.t), np.asarray(sol.loss)
        pred = np.asarray(jax.vmap(sol.model)(data.x))[:, 0]  # the final predictor
        rows = [
            Row("final loss", float(loss[-1]), fit_loss, "affine LS fit (small λ)"),
            Row("‖f(x) − affine fit‖/‖fit‖ at the end", np.linalg.norm(pred - fit)
                / np.linalg.norm(fit), 0.0, "affine LS fit (small λ)", distance=True),
            Row("large neurons with a kink in the data", _inner_kinks(sol.model, x.min(), x.max()),
                0.0, "0 at small λ (early alignment)"),
        ]  # fmt: skip
        th_t = np.array([ts[1], t[-1]])
        th_l = np.full(2, fit_loss)
        return Outcome(
            lam, t, loss, th_t, th_l, rows, sol.status, int(sol.stats["num_steps"]), 0.0
        )

    outcomes = run_scales(cfg, build, log)
    return to_dataset(
        cfg, outcomes,
        title=(
            f"two-layer bias-ReLU net, width {cfg.width}, balanced init, on the 3 points "
            f"x = {tuple(x.tolist())}, y = {tuple(y.tolist())}; affine LS fit "
            f"{slope:.5g}·x + {intercept:.5g}, loss {fit_loss:.5g}"
        ),
        expectation=(
            "small λ: the final loss and predictor equal the affine least-squares fit (errors "
            "shrinking with λ), no kink inside the data; λ ≈ 0.3–1: zero loss, relative error "
            "−1 (the trap is escaped)"
        ),
        loss_label="loss ½·mean(f(x) − y)²",
    )  # fmt: skip
