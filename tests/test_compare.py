"""GD against the flow: modified-flow order, sharpness, and `gf.analysis.compare`."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradflow as gf

S = np.array([3.0, 2.0, 1.0])


def _setup():
    data = gf.data.linear_teacher(S, key=jax.random.key(0))
    model = gf.models.DeepLinear(3, 6, 3, 2, 1e-3, key=jax.random.key(1))
    return data, model


def test_modified_flow_is_second_order_close_to_gd():
    """‖θ_GD(T) − θ_modified(T)‖ ∝ lr² while ‖θ_GD(T) − θ_flow(T)‖ ∝ lr
    (backward error analysis)."""
    data, model = _setup()
    T = 10.0
    lrs = np.array([0.04, 0.02, 0.01])
    tight = dict(rtol=1e-11, atol=1e-14, save=20)
    flow = gf.flow(model, data, t1=T, **tight)
    d_flow, d_mod = [], []
    for lr in lrs:
        run = gf.gd(model, data, optax.sgd(lr), t1=T, save=20)
        mod = gf.flow(model, data, t1=T, field=gf.ModifiedFlow(lr), **tight)
        d_flow.append(
            gf.analysis.compare(flow, run, levels=gf.theory.drop_midpoints(S)).param_distance
        )
        d_mod.append(
            gf.analysis.compare(mod, run, levels=gf.theory.drop_midpoints(S)).param_distance
        )
    slope_flow = np.polyfit(np.log(lrs), np.log(d_flow), 1)[0]
    slope_mod = np.polyfit(np.log(lrs), np.log(d_mod), 1)[0]
    assert abs(slope_flow - 1.0) < 0.15, slope_flow
    assert abs(slope_mod - 2.0) < 0.3, slope_mod
    assert np.all(np.asarray(d_mod) < np.asarray(d_flow))


def test_compare_transition_times_and_loss_gap():
    data, model = _setup()
    flow = gf.flow(model, data, t1=12.0, rtol=1e-10, atol=1e-12, save=400)
    run = gf.gd(model, data, optax.sgd(0.02), t1=12.0, save=400)
    c = gf.analysis.compare(flow, run, levels=gf.theory.drop_midpoints(S))
    # first-order backward error: GD is late, by about lr/2 × (a few) per transition
    assert np.all(c.time_error > 0) and np.all(c.rel_time_error < 0.05)
    # each crossing is the same quantity computed directly
    for lv, tf in zip(c.levels, c.flow_times):
        assert abs(tf - gf.analysis.first_crossing(flow.t, flow.loss, lv)) < 1e-12
    assert c.loss_gap.shape == run.t.shape
    assert np.nanmax(np.abs(c.loss_gap)) < 1.0
    assert np.isfinite(c.param_distance) and c.param_distance < 1e-2
    assert "rel.err" in str(c)


def test_sharpness_is_top_hessian_eigenvalue():
    a = jnp.diag(jnp.array([5.0, 2.0, 0.5, 0.1]))
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(3), (4, 4)))
    h = q @ a @ q.T
    loss = lambda p, _: 0.5 * p @ h @ p
    lam = gf.analysis.hessian_top_eigenvalue(loss, jnp.ones(4), iters=200)
    np.testing.assert_allclose(float(lam), 5.0, rtol=1e-8)


def test_sharpness_metric_at_convergence_equals_2_s1():
    """At the global minimum of a 2-layer linear net on whitened data, λ_max(∇²L) = 2 s_1
    (exactly for balanced layers; the small init leaves an imbalance of order ε², hence 1e-4)."""
    data, model = _setup()
    sol = gf.flow(
        model, data, t1=30.0, save=5, metrics={"sharpness": gf.analysis.sharpness(iters=200)}
    )
    np.testing.assert_allclose(float(sol.metrics["sharpness"][-1]), 2 * S[0], rtol=1e-4)
