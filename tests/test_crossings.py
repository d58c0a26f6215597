"""Level crossings recorded during the solve (`crossings=`), without stopping it.

Predictions: the Saxe sigmoid of VALIDATION V1 (`gf.theory.saxe_loss`, inverted here by
bisection) and its mode half-times (`gf.theory.saxe_half_time`); and, to separate the
interpolant from the solve, the root of L(y(t)) on diffrax's own dense output of the same
solve (same solver, controller and tolerances, hence the same steps).
"""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_validation import S, decoupled_3x3, v1_data

import gradflow as gf

KW = dict(t1=10.0, save=16, solver="tsit5", rtol=1e-10, atol=1e-14, progress=False)
LEVELS = np.array([6.9, 6.0, 4.5, 2.5, 1.0, 0.5, 0.1, 0.01])


def _bisect(f, lo, hi, levels, n=64):
    """Vectorised bisection of the decreasing f(t) = level on [lo, hi] (to the last ulp)."""
    lo, hi = np.full(levels.shape, lo), np.full(levels.shape, hi)
    for _ in range(n):
        mid = 0.5 * (lo + hi)
        above = np.asarray(f(mid)) > levels
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return 0.5 * (lo + hi)


def test_crossings_match_dense_output_and_saxe_and_leave_the_record_alone():
    """Two members under vmap (a0 = 1e-3, 1e-2); the dense-output check on the first."""
    data = v1_data()
    a0 = np.array([1e-3, 1e-2])
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[decoupled_3x3(data, a) for a in a0])
    model = decoupled_3x3(data, a0[0])
    with_cross = jax.jit(jax.vmap(lambda m: gf.flow(m, data, crossings=LEVELS.tolist(), **KW)))
    sols = with_cross(stacked)
    plains = jax.jit(jax.vmap(lambda m: gf.flow(m, data, **KW)))(stacked)
    assert (np.asarray(sols.status_code) == 0).all()  # success
    times_all = np.asarray(sols.crossings)
    assert times_all.shape == (2, LEVELS.size) and np.all(np.diff(times_all, axis=1) > 0)
    times = times_all[0]

    # 1. the record is untouched: same steps, bitwise the same saved losses and final state
    for k in ("num_steps", "num_accepted", "num_rejected"):
        np.testing.assert_array_equal(sols.stats[k], plains.stats[k])
    np.testing.assert_array_equal(sols.loss, plains.loss)
    for a, b in zip(sols.model.weights, plains.model.weights):
        np.testing.assert_array_equal(a, b)
    # the watch is charged: one gradient at t0 and one per accepted step
    extra = np.asarray(sols.stats["num_grad_evals"]) - np.asarray(plains.stats["num_grad_evals"])
    np.testing.assert_array_equal(extra, np.asarray(sols.stats["num_accepted"]) + 1)

    # 2. the same solve by hand in diffrax with dense output; root of L(y(t)) on it
    params = tuple(model.weights)

    def loss_w(w):  # gf.losses.mse of the depth-2 linear net, written out
        return 0.5 * jnp.mean(jnp.sum((data.x @ (w[1] @ w[0]).T - data.y) ** 2, axis=-1))

    np.testing.assert_allclose(float(loss_w(params)), float(sols.loss[0, 0]), rtol=1e-15)
    term = dfx.ODETerm(lambda t, w, a: jax.tree.map(jnp.negative, jax.grad(loss_w)(w)))
    ctrl = dfx.PIDController(rtol=KW["rtol"], atol=KW["atol"], pcoeff=0.3, icoeff=0.3)
    dense = dfx.diffeqsolve(
        term, dfx.Tsit5(), 0.0, KW["t1"], None, params, saveat=dfx.SaveAt(dense=True),
        stepsize_controller=ctrl, max_steps=4096,
    )  # fmt: skip
    assert int(dense.stats["num_steps"]) == int(sols.stats["num_steps"][0])  # the same steps
    on_dense = jax.jit(jax.vmap(lambda t: loss_w(dense.evaluate(t))))
    ref = _bisect(on_dense, 0.0, KW["t1"], LEVELS)
    # The quintic Hermite refinement is sixth order in the step, Tsit5's dense output fourth
    # order with a small constant: both sit at the solve's own accuracy (next check, ~1e-10
    # at rtol 1e-10). Measured: 1.9e-10 relative at most; the cubic bracket alone is off by
    # up to 9e-8, so this tolerance fails without the refinement.
    np.testing.assert_allclose(times, ref, rtol=2e-9, atol=0)

    # 3. against the exact Saxe loss (VALIDATION V1, u0 = a0²), both members. V1's tolerance
    # is 1e-6; at rtol 1e-10 the times come out within 1.7e-10 (measured), the dense-output
    # roots within 5e-11.
    for a, got in zip(a0, times_all):
        f = lambda t: gf.theory.saxe_loss(t, S, a * a)
        np.testing.assert_allclose(got, _bisect(f, 0.0, KW["t1"], LEVELS), rtol=2e-9, atol=0)


@pytest.mark.slow
def test_crossings_of_a_user_function_under_vmap():
    """Mode strengths crossing half their target are the Saxe half-times, per member."""
    data = v1_data()
    a0 = np.array([1e-3, 1e-2])
    models = [decoupled_3x3(data, a) for a in a0]
    fn = lambda m: gf.analysis.mode_strengths(m, data)[0]  # mode 1 (s = 3)
    cr = gf.Crossings([0.75, 1.5, 2.25], fn=fn)

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *models)
    times = np.asarray(jax.vmap(lambda m: gf.flow(m, data, crossings=cr, **KW).crossings)(stacked))
    assert times.shape == (2, 3)
    s = S[0]
    for i, a in enumerate(a0):
        u0 = a * a
        # u(t) = s·e^{2st}/(e^{2st} − 1 + s/u0) inverted at u = f·s
        pred = np.array([gf.theory.saxe_time(s, u0, f * s) for f in (0.25, 0.5, 0.75)])
        np.testing.assert_allclose(times[i], pred, rtol=1e-6, atol=0)
    np.testing.assert_allclose(times[:, 1], gf.theory.saxe_half_time(s, a0**2), rtol=1e-6)


def test_crossings_bad_input():
    data = v1_data()
    model = decoupled_3x3(data, 1e-3)
    with pytest.raises(ValueError, match="non-empty list of finite numbers"):
        gf.flow(model, data, crossings=[], **KW)
    with pytest.raises(ValueError, match="finite"):
        gf.Crossings([1.0, float("nan")])
    with pytest.raises(TypeError, match="gf.Crossings"):
        gf.flow(model, data, crossings={"loss": [1.0]}, **KW)
    with pytest.raises(ValueError, match="adaptive step-size controller"):
        gf.flow(
            model, data, crossings=[1.0], t1=1.0, solver="tsit5", dt0=0.1,
            controller=dfx.ConstantStepSize(), progress=False,
        )  # fmt: skip
