"""Discrete gradient descent `gf.gd`: time axis, convergence to the flow, stability, stops.

Most checks use a one-layer linear model on whitened data, where the loss is exactly
L(W) = ½‖S − W‖²_F (Hessian = I, λ_max = 1) and GD has the closed form
W_k = S + (1 − lr)^k (W_0 − S), i.e. L_k = (1 − lr)^{2k} L_0.
"""

import jax
import numpy as np
import optax
import pytest

import gradflow as gf

S = np.array([3.0, 2.0, 1.0])
# one optimizer object shared by several tests: `gd` compiles once per (optimizer object,
# static options, save-grid length), and every `optax.sgd(...)` call is a new object
SGD_01 = optax.sgd(0.1)


def v1_data():
    return gf.data.linear_teacher(S, key=jax.random.key(0), rotate=False)


def quadratic_model():
    return gf.models.DeepLinear(3, 3, 3, depth=1, init_scale=0.1, key=jax.random.key(4))


def closed_form_loss(model, lr, k):
    w0 = np.asarray(model.weights[0])
    return 0.5 * (1.0 - lr) ** (2 * np.asarray(k)) * np.sum((np.diag(S) - w0) ** 2)


def test_quadratic_loss_is_half_frobenius():
    data, model = v1_data(), quadratic_model()
    np.testing.assert_allclose(
        gf.losses.mse(model, data), closed_form_loss(model, 0.0, 0), rtol=1e-14
    )


def test_time_axis_is_k_lr_and_matches_closed_form():
    data, model = v1_data(), quadratic_model()
    lr = 0.05
    run = gf.gd(model, data, optax.sgd(lr), t1=2.0)
    assert run.status == "success"
    assert int(run.stats["num_steps"]) == 40
    t = np.asarray(run.t)
    k = np.rint(t / lr)
    np.testing.assert_allclose(t, k * lr, rtol=1e-13, atol=1e-15)
    assert t[0] == 0.0 and np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t[-1], 2.0, rtol=1e-13)
    np.testing.assert_allclose(run.t_final, 2.0, rtol=1e-13)
    np.testing.assert_allclose(run.loss, closed_form_loss(model, lr, k), rtol=1e-12)


def test_num_steps_and_t1_agree():
    data, model = v1_data(), quadratic_model()
    lr = 0.1
    by_steps = gf.gd(model, data, SGD_01, num_steps=11)
    by_time = gf.gd(model, data, SGD_01, t1=1.03)  # ceil(1.03 / 0.1) = 11 steps
    for run in (by_steps, by_time):
        assert run.status == "success" and int(run.stats["num_steps"]) == 11
        np.testing.assert_allclose(run.t_final, 1.1, rtol=1e-13)
    np.testing.assert_array_equal(by_steps.t, by_time.t)
    np.testing.assert_array_equal(by_steps.loss, by_time.loss)
    np.testing.assert_array_equal(by_steps.model.weights[0], by_time.model.weights[0])
    np.testing.assert_allclose(by_steps.loss[-1], closed_form_loss(model, lr, 11), rtol=1e-12)


def test_explicit_save_times_do_not_shorten_the_run():
    """`t1`/`num_steps` say how long to run; `save` only says where to record. A save grid
    that ends before t1 must not end the run there (the flow runs to t1 with any grid)."""
    data, model = v1_data(), quadratic_model()
    lr = 0.1
    run = gf.gd(model, data, SGD_01, t1=10.0, save=[0.0, 1.0, 2.0])
    assert int(run.stats["num_steps"]) == 100
    assert run.status == "success"
    np.testing.assert_allclose(run.t_final, 10.0, rtol=1e-13)
    # the loss is a squared residual of ~7e-5: rounding in 100 steps gives ~1e-11 relative
    np.testing.assert_allclose(run.loss[-1], closed_form_loss(model, lr, 100), rtol=1e-10)


def test_lr_above_stability_limit_diverges():
    """λ_max = 1, so GD is stable for lr < 2: lr = 1.9 converges, lr = 2.5 diverges."""
    data, model = v1_data(), quadratic_model()
    stable = gf.gd(model, data, optax.sgd(1.9), num_steps=200)
    assert stable.status == "success"
    assert float(stable.loss[-1]) < 1e-12 * float(stable.loss[0])
    run = gf.gd(model, data, optax.sgd(2.5), num_steps=200)
    assert run.status == "diverged"
    t_final = float(run.t_final)
    assert 0.0 < t_final < 200 * 2.5
    np.testing.assert_allclose(t_final / 2.5, np.rint(t_final / 2.5), atol=1e-9)  # at a step
    loss = np.asarray(run.loss)
    assert np.all(np.isfinite(loss)) and loss[-1] > 1e6 * loss[0]
    assert np.all(np.asarray(run.t) <= t_final)


def test_stop_when_interpolates_between_steps():
    data, model = v1_data(), quadratic_model()
    lr = 0.1
    l0 = float(closed_form_loss(model, lr, 0))
    level = 0.3 * l0
    run = gf.gd(
        model, data, SGD_01, num_steps=100,
        stop_when=lambda m: gf.losses.mse(m, data) - level,
    )  # fmt: skip
    assert run.status == "stopped"
    # closed form: L_k = 0.81^k L0 crosses `level` between steps k and k + 1
    losses = closed_form_loss(model, lr, np.arange(101))
    k = int(np.flatnonzero(losses <= level)[0]) - 1
    s0, s1 = losses[k] - level, losses[k + 1] - level
    t_pred = lr * (k + s0 / (s0 - s1))
    t_final = float(run.t_final)
    assert k * lr < t_final < (k + 1) * lr
    np.testing.assert_allclose(t_final, t_pred, rtol=1e-12)
    assert float(run.t[-1]) == t_final


def test_minibatch_with_full_batch_size_is_full_batch():
    data, model = v1_data(), quadratic_model()
    opt = SGD_01
    full = gf.gd(model, data, opt, num_steps=11)
    batched = gf.gd(model, data, opt, num_steps=11, batch_size=3, key=jax.random.key(5))
    np.testing.assert_array_equal(full.t, batched.t)
    np.testing.assert_array_equal(full.loss, batched.loss)
    np.testing.assert_array_equal(full.model.weights[0], batched.model.weights[0])
    # a genuine mini-batch takes a different path
    small = gf.gd(model, data, opt, num_steps=11, batch_size=1, key=jax.random.key(5))
    assert not np.allclose(small.loss[-1], full.loss[-1], rtol=1e-6)


def test_gd_drop_time_error_is_first_order_in_lr():
    """V2-type net (H = 8, ε = 1e-6): the first drop time (midpoint crossing) of GD minus the
    flow's shrinks linearly with lr: log-log slope 1 ± 0.15, GD late."""
    data = v1_data()
    model = gf.models.DeepLinear(3, 8, 3, 2, 1e-6, key=jax.random.key(0))
    levels = gf.theory.plateau_levels(S)
    mid = 0.5 * (levels[0] + levels[1])
    t1 = 6.0
    grid = np.linspace(0.0, t1, 601)
    flow = gf.flow(model, data, t1=t1, save=grid, rtol=1e-10, atol=1e-9)
    assert flow.status == "success"
    t_flow = gf.analysis.first_crossing(flow.t, flow.loss, mid)
    lrs = np.array([0.04, 0.02, 0.01])
    errors = []
    for lr in lrs:
        run = gf.gd(model, data, optax.sgd(lr), t1=t1, save=grid)
        assert run.status == "success"
        errors.append(gf.analysis.first_crossing(run.t, run.loss, mid) - t_flow)
    errors = np.array(errors)
    assert np.all(errors > 0), errors
    slope = np.polyfit(np.log(lrs), np.log(errors), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.15), (slope, errors)
