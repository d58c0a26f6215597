"""The flow engine: vmap, status values, input errors, solvers, fields, pytrees, tolerances.

Predictions come from closed forms (Saxe sigmoid, matrix exponential, the blow-up time of
θ̇ = 4θ³) or from a tighter solve of the same problem, never from pasted numbers.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

import gradflow as gf

S = np.array([3.0, 2.0, 1.0])


def v1_data():
    return gf.data.linear_teacher(S, key=jax.random.key(0), rotate=False)


def v1_model(data, a0=1e-3):
    model = gf.models.DeepLinear(3, 3, 3, depth=2, init_scale=1.0, key=jax.random.key(0))
    return gf.models.init.decoupled(model, data, a0)


# --------------------------------------------------------------------------------------------
# vmap over init scales == a Python loop; "max_steps" keeps the record up to t_final

VMAP_KEY = jax.random.key(3)
VMAP_GRID = np.linspace(0.0, 20.0, 41)
# All at most 1e-4, so that the loop compiles one program (the linear start compiled in, as
# under vmap; `linear_below`), which the 1e-10 member uses. Steps to t = 20 (measured, tier
# flags): 228, 271 and 254 (13 of them linear); this budget lets only the 1e-4 member finish,
# with 12 steps of margin either way.
VMAP_SCALES = [1e-4, 1e-6, 1e-10]
VMAP_MAX_STEPS = 240


def _solve_at_scale(scale):
    data = v1_data()
    model = gf.models.DeepLinear(3, 4, 3, 2, scale, key=VMAP_KEY)
    return gf.flow(
        model, data, t1=20.0, save=VMAP_GRID, rtol=1e-8, atol=1e-13, max_steps=VMAP_MAX_STEPS
    )


def test_max_steps_keeps_record_up_to_t_final():
    sol = _solve_at_scale(VMAP_SCALES[-1])
    assert sol.status == "max_steps"
    assert int(sol.stats["num_steps"]) == VMAP_MAX_STEPS
    t = np.asarray(sol.t)
    t_final = float(sol.t_final)
    assert 0.0 < t_final < 20.0
    assert t[-1] == t_final and np.all(np.diff(t) > 0)
    reached = VMAP_GRID[VMAP_GRID <= t_final]
    np.testing.assert_array_equal(t[: reached.size], reached)
    assert t.size in (reached.size, reached.size + 1)
    loss = np.asarray(sol.loss)
    assert np.all(np.isfinite(loss))
    # the last record is the state where the solve ended
    np.testing.assert_allclose(loss[-1], gf.losses.mse(sol.model, v1_data()), rtol=1e-13)


# --------------------------------------------------------------------------------------------
# status "diverged" and "stopped"


def test_diverged_blow_up_time():
    """L = -Σθ⁴ from θ = 1: θ̇ = 4θ³, θ(t) = (1 - 8t)^(-1/2) blows up at t = 1/8."""
    sol = gf.solve_flow(lambda p, args: -jnp.sum(p**4), jnp.ones(1), t1=1.0)
    assert sol.status == "diverged"
    np.testing.assert_allclose(float(sol.t_final), 1 / 8, rtol=1e-2)
    assert float(sol.t[-1]) == float(sol.t_final)


def test_stop_when_loss_level_with_infinite_t1():
    data = v1_data()
    model = v1_model(data)
    level = 3.0  # inside the first drop (7 -> 2.5)
    sol = gf.flow(
        model, data, t1=math.inf, rtol=1e-10, atol=1e-14,
        stop_when=lambda m: gf.losses.mse(m, data) - level,
    )  # fmt: skip
    assert sol.status == "stopped"
    np.testing.assert_allclose(float(sol.loss[-1]), level, rtol=1e-6)
    np.testing.assert_allclose(float(gf.losses.mse(sol.model, data)), level, rtol=1e-6)
    assert float(sol.t[-1]) == float(sol.t_final)
    assert np.all(np.asarray(sol.t) <= float(sol.t_final))
    # the crossing time of the exact Saxe loss curve
    t_pred = scipy.optimize.brentq(
        lambda t: gf.theory.saxe_loss(t, S, 1e-6) - level, 2.0, 4.0, xtol=1e-14
    )
    np.testing.assert_allclose(float(sol.t_final), t_pred, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# input errors (raised before any compile)


def test_input_errors():
    data = v1_data()
    model = v1_model(data)
    with pytest.raises(ValueError, match="stop_when"):
        gf.flow(model, data, t1=math.inf)
    with pytest.raises(ValueError, match="stop_when"):
        gf.solve_flow(lambda p, a: jnp.sum(p**2), jnp.ones(2), t1=float("inf"))
    for bad_t1 in (0.0, -1.0):
        with pytest.raises(ValueError, match="t1"):
            gf.flow(model, data, t1=bad_t1)
    for bad_rtol in (0.0, -1e-6):
        with pytest.raises(ValueError, match="rtol"):
            gf.flow(model, data, t1=1.0, rtol=bad_rtol)
    with pytest.raises(ValueError, match="rk4") as err:
        gf.flow(model, data, t1=1.0, solver="rk4")
    for name in ("tsit5", "dopri5", "dopri8", "kvaerno5"):
        assert name in str(err.value)


# --------------------------------------------------------------------------------------------
# solvers and fields


def test_kvaerno5_matches_tsit5_on_v1():
    data = v1_data()
    model = v1_model(data)
    ts = np.array([0, 2.0, 2.3, 3, 3.5, 4, 5, 7, 8])
    kw = dict(t1=8.0, save=ts, rtol=1e-8, atol=1e-12)
    implicit = gf.flow(model, data, solver="kvaerno5", **kw)
    explicit = gf.flow(model, data, solver="tsit5", **kw)
    assert implicit.status == explicit.status == "success"
    np.testing.assert_array_equal(implicit.t, ts)
    np.testing.assert_allclose(implicit.loss, explicit.loss, rtol=1e-5)
    np.testing.assert_allclose(implicit.loss, gf.theory.saxe_loss(ts, S, 1e-6), rtol=1e-5)


def test_modified_flow_on_quadratic_dict_pytree_with_trajectory():
    """L = ½θᵀAθ: ModifiedFlow(lr) is θ̇ = -(A + (lr/2)A²)θ, so θ(t) = expm(-(A + lr/2 A²)t)θ0.
    The parameters are a dict of two arrays (any pytree works) and the whole trajectory is
    saved with a leading time axis."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    a = q @ np.diag([0.3, 0.8, 1.5, 2.0]) @ q.T
    theta0 = rng.normal(size=4)
    lr = 0.2

    def loss(p, args):
        theta = jnp.concatenate([p["a"], p["b"]])
        return 0.5 * theta @ args @ theta

    params = {"a": jnp.asarray(theta0[:1]), "b": jnp.asarray(theta0[1:])}
    ts = np.linspace(0.0, 3.0, 13)
    sol = gf.solve_flow(
        loss, params, jnp.asarray(a), t1=3.0, field=gf.ModifiedFlow(lr), save=ts,
        rtol=1e-12, atol=1e-14, save_params=True,
    )  # fmt: skip
    assert sol.status == "success"
    m = a + 0.5 * lr * a @ a
    exact = np.stack([scipy.linalg.expm(-m * t) @ theta0 for t in ts])
    traj = sol.trajectory
    assert isinstance(traj, dict) and traj["a"].shape == (ts.size, 1)
    assert traj["b"].shape == (ts.size, 3)
    got = np.concatenate([np.asarray(traj["a"]), np.asarray(traj["b"])], axis=1)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-8)
    final = np.concatenate([np.asarray(sol.params["a"]), np.asarray(sol.params["b"])])
    np.testing.assert_allclose(final, exact[-1], rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        sol.loss, 0.5 * np.einsum("ti,ij,tj->t", exact, a, exact), rtol=1e-8
    )
    # and it is not the plain gradient flow (the lr correction is visible at this size)
    plain = np.stack([scipy.linalg.expm(-a * t) @ theta0 for t in ts])
    assert np.max(np.abs(got - plain)) > 1e-3


# --------------------------------------------------------------------------------------------
# derived atol; save_params on a model


def _escape_time(sol):
    """First drop: crossing of the midpoint between the first two plateau levels."""
    lv = gf.theory.plateau_levels(S)
    return gf.analysis.first_crossing(sol.t, sol.loss, 0.5 * (lv[0] + lv[1]))


def test_derived_atol_tracks_reference_and_fixed_atol_does_not():
    """With atol derived from the init (the default) the first escape of a 2-layer net at
    init 1e-9 and 1e-12 is within 1 % of an rtol = 1e-10 reference. Without the linear start
    (explicit steps from the init), a fixed atol = 1e-6 above the init scale makes it late:
    by more than 1 % at init 1e-12 (the criterion above can fail), and at 1e-9 by far more
    than the derived atol's error. The default's linear start integrates the growth from the
    init exactly, so there even the fixed atol gives the escape to 1e-4."""
    data = v1_data()
    t1 = 14.0
    errors, linear = {}, {}
    explicit = gf.Auto(linear_start=False)
    fixed_atol = dict(rtol=jnp.asarray(1e-6), atol=jnp.asarray(1e-6))
    for eps in (1e-9, 1e-12):
        model = gf.models.DeepLinear(3, 8, 3, 2, eps, key=jax.random.key(1))
        w1, w2 = (np.asarray(w) for w in model.weights)
        pred = gf.theory.drop_times_random_init(S, w1, w2)[0]
        window = pred * (1 + np.linspace(-0.1, 0.1, 81))
        ts = np.unique(np.concatenate([np.linspace(0, t1, 57), window]))
        # tolerances given as arrays are traced, not static: with the same `save_params`,
        # the explicit runs share one compiled solve, and the default's runs another
        run = dict(t1=t1, save=ts, save_params=True)
        tight = dict(rtol=jnp.asarray(1e-10), atol=jnp.asarray(1e-16))
        ref = _escape_time(gf.flow(model, data, solver=explicit, **run, **tight))
        rtol = dict(rtol=jnp.asarray(1e-6))  # the default, traced (atol derived from the init)
        derived = gf.flow(model, data, solver=explicit, **run, **rtol)
        fixed = gf.flow(model, data, solver=explicit, **run, **fixed_atol)
        assert derived.status == fixed.status == "success"
        errors[eps] = (_escape_time(derived) / ref - 1, _escape_time(fixed) / ref - 1)
        _check_model_trajectory(derived, model, data)
        default = gf.flow(model, data, **run, **rtol)
        default_fixed = gf.flow(model, data, **run, **fixed_atol)
        assert int(default.stats["num_linear_steps"]) > 0
        assert int(default_fixed.stats["num_linear_steps"]) > 0
        linear[eps] = (_escape_time(default) / ref - 1, _escape_time(default_fixed) / ref - 1)
        _check_model_trajectory(default, model, data)
    for eps, (err_derived, err_fixed) in errors.items():
        assert abs(err_derived) < 1e-2, (eps, err_derived)
        assert err_fixed > 0, (eps, err_fixed)
    assert errors[1e-12][1] > 1e-2
    assert errors[1e-9][1] > 10 * abs(errors[1e-9][0])
    for eps, (err_default, err_fixed) in linear.items():
        assert abs(err_default) < 1e-4 and abs(err_fixed) < 1e-4, (eps, linear[eps])


def _check_model_trajectory(sol, model, data):
    """save_params=True on gf.flow: a model whose arrays have a leading time axis."""
    traj = sol.trajectory
    n = np.size(sol.t)
    assert isinstance(traj, gf.models.DeepLinear)
    for w_traj, w0, w_end in zip(traj.weights, model.weights, sol.model.weights):
        assert w_traj.shape == (n,) + w0.shape
        np.testing.assert_array_equal(w_traj[0], w0)
        np.testing.assert_array_equal(w_traj[-1], w_end)
    for i in (0, n // 2, n - 1):
        snap = jax.tree.map(lambda x: x[i], traj)
        np.testing.assert_allclose(gf.losses.mse(snap, data), sol.loss[i], rtol=1e-13)


# --------------------------------------------------------------------------------------------
# progress=True prints a live line and changes nothing in the result


def test_progress_line_is_printed_and_leaves_the_solve_unchanged(capsys):
    data = v1_data()
    model = v1_model(data)
    # tight tolerances: ~1,300 steps, past the first report after FIRST_REPORT = 512 steps
    kw = dict(t1=12.0, save=8, solver="tsit5", rtol=1e-12, atol=1e-15)
    quiet = gf.flow(model, data, progress=False, **kw)
    assert int(quiet.stats["num_steps"]) > gf._flow.progress.FIRST_REPORT
    capsys.readouterr()
    loud = gf.flow(model, data, progress=True, **kw)
    err = capsys.readouterr().err
    assert "steps=" in err and "loss=" in err and err.endswith("\n")
    np.testing.assert_array_equal(np.asarray(loud.loss), np.asarray(quiet.loss))
    assert int(loud.stats["num_steps"]) == int(quiet.stats["num_steps"])
