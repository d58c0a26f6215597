"""`Auto`'s linear start (`gradflow/_flow/linear.py`): exact exponential steps while the flow
is linear about the init, their dense output, and when the start is (not) used."""

import math

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf
from gradflow._flow import linear

S = np.array([3.0, 2.0, 1.0])


def _teacher():
    return gf.data.linear_teacher(list(S), in_size=3, out_size=3, key=jax.random.key(0))


def _flat(params):
    return jax.flatten_util.ravel_pytree(params)[0]


def test_defect_is_a_second_difference():
    """0 for an affine field, ~|y|² relative for a cubic remainder, O(1) for a quadratic one."""
    a = jnp.array([[1.0, 2.0], [0.5, -1.0]])
    b = jnp.array([0.3, -0.2])
    y0 = jnp.array([1e-3, -2e-3])
    affine = lambda y: a @ y + b
    assert float(linear.defect(affine, y0, affine(y0))) == pytest.approx(0.0, abs=1e-15)
    cubic = lambda y: a @ y + y**3
    d = float(linear.defect(cubic, y0, cubic(y0)))
    # (2y)³ − 2y³ = 6y³ against |a y| ~ 5e-3
    expect = float(jnp.max(jnp.abs(6 * y0**3)) / jnp.max(jnp.abs(a @ y0 + y0**3)))
    assert d == pytest.approx(expect, rel=1e-10)
    quadratic = lambda y: y**2
    assert float(linear.defect(quadratic, y0, quadratic(y0))) == pytest.approx(2.0, rel=1e-12)
    zero = lambda y: 0.0 * y
    assert np.isinf(float(linear.defect(zero, y0, zero(y0))))


def test_linear_regression_is_solved_exactly_with_its_dense_output():
    """An affine field: the linear start holds to the end, in few steps, and every saved
    point (most inside long steps: the Chebyshev dense output) is the closed-form solution
    w(t) = w* + e^{-tH}(w0 − w*)."""
    key_x, key_w = jax.random.split(jax.random.key(3))
    x = jax.random.normal(key_x, (40, 6))
    y = x @ jnp.arange(1.0, 7.0) + 0.1
    loss = lambda w, _: 0.5 * jnp.mean((x @ w["w"] + w["b"] - y) ** 2)
    w0 = {"w": 1e-3 * jax.random.normal(key_w, (6,)), "b": jnp.zeros(())}
    ts = np.linspace(0.0, 30.0, 301)
    # an init of 1e-3 is above `linear_below` (meant for nonlinear nets): lift that gate
    sol = gf.solve_flow(loss, w0, t1=30.0, save=ts, save_params=True,
                        solver=gf.Auto(linear_below=math.inf))  # fmt: skip
    assert sol.status == "success"
    assert int(sol.stats["num_linear_steps"]) == int(sol.stats["num_accepted"])
    assert int(sol.stats["num_steps"]) < 40
    # closed form in numpy
    xa = np.concatenate([np.asarray(x), np.ones((40, 1))], 1)
    hess = xa.T @ xa / 40
    w_star = np.linalg.lstsq(xa, np.asarray(y), rcond=None)[0]
    lam, vecs = np.linalg.eigh(hess)
    z0 = np.concatenate([np.asarray(w0["w"]), [0.0]])
    exact = np.stack([w_star + vecs @ (np.exp(-t * lam) * (vecs.T @ (z0 - w_star)))
                      for t in ts])  # fmt: skip
    traj = sol.trajectory
    got = np.concatenate([np.asarray(traj["w"]), np.asarray(traj["b"])[:, None]], 1)
    np.testing.assert_allclose(got, exact, rtol=1e-7, atol=1e-9)


def _two_layer(sigma, seed=1):
    return gf.models.DeepLinear(3, 8, 3, 2, sigma, key=jax.random.key(seed))


def test_first_plateau_from_1e12_is_a_few_exact_steps():
    """2-layer linear net at init 1e-12: on the first plateau the weights grow 1e8-fold; the
    saved weights there match the linearised flow θ0 + tφ1(tJ0)F(θ0) (numpy, from the
    Hessian at the init) to 1e-7, the start takes far fewer steps than the explicit path,
    and its loss curve is as close to an rtol = 1e-10 reference (within 2e-5; both are
    ~1e-5 off in the steepest part of a drop)."""
    data = _teacher()
    model = _two_layer(1e-12)
    ts = np.concatenate([np.linspace(0.0, 6.0, 61), np.linspace(6.5, 20.0, 28)])
    kw = dict(t1=20.0, save=ts, save_params=True, progress=False)
    sol = gf.flow(model, data, **kw)
    # tolerances as arrays are traced: the explicit run and its rtol = 1e-10 reference share
    # one compiled solve
    explicit = dict(solver=gf.Auto(linear_start=False), **kw)
    ref = gf.flow(model, data, rtol=jnp.asarray(1e-6), **explicit)
    assert int(sol.stats["num_linear_steps"]) > 0
    assert int(ref.stats["num_linear_steps"]) == 0
    assert int(sol.stats["num_steps"]) < int(ref.stats["num_steps"]) - 30
    tight = gf.flow(model, data, rtol=jnp.asarray(1e-10), **explicit)
    assert np.max(np.abs(sol.loss / tight.loss - 1)) < 2e-5
    assert np.max(np.abs(ref.loss / tight.loss - 1)) < 2e-5
    # the linearised flow, in numpy
    params, static = eqx.partition(model, eqx.is_inexact_array)
    y0, unravel = jax.flatten_util.ravel_pytree(params)
    loss = lambda z: gf.losses.mse(eqx.combine(unravel(z), static), data)
    f0 = -np.asarray(jax.jit(jax.grad(loss))(y0))  # (jitted: one compile, not one per op)
    jac = -np.asarray(jax.jit(jax.hessian(loss))(y0))
    lam, vecs = np.linalg.eigh(0.5 * (jac + jac.T))
    traj = sol.trajectory
    flat = np.stack([np.asarray(_flat(eqx.partition(jax.tree.map(lambda a: a[i], traj),
                                                    eqx.is_inexact_array)[0]))
                     for i in range(len(ts))])  # fmt: skip
    early = ts <= 3.0  # weights below ~1e-7: the cubic remainder is < 1e-14 relative
    assert np.abs(flat[early]).max() < 1e-6
    for i in np.flatnonzero(early):
        t = ts[i]
        z = t * lam
        phi1 = np.where(np.abs(z) > 1e-8, np.expm1(z) / np.where(z == 0, 1, z), 1.0)
        lin = np.asarray(y0) + vecs @ (t * phi1 * (vecs.T @ f0))
        np.testing.assert_allclose(flat[i], lin, rtol=1e-7, atol=1e-7 * np.abs(lin).max())


def test_no_linear_start_where_it_cannot_pay():
    """At init 1e-3 the field is linear only while the weights grow ~3×: the start is not
    used, and the steps and losses are exactly those without it (also when it is compiled
    in: the dense output is then a series of the same Hermite cubic). A 3-layer net's field
    is quadratic at 0: never."""
    data = _teacher()
    kw = dict(t1=5.0, save=20, progress=False)
    sol = gf.flow(_two_layer(1e-3), data, **kw)
    ref = gf.flow(_two_layer(1e-3), data, solver=gf.Auto(linear_start=False), **kw)
    assert int(sol.stats["num_linear_steps"]) == 0
    assert int(sol.stats["num_steps"]) == int(ref.stats["num_steps"])
    np.testing.assert_allclose(sol.loss, ref.loss, rtol=1e-12)
    deep = gf.models.DeepLinear(3, 8, 3, 3, 1e-6, key=jax.random.key(1))
    assert int(gf.flow(deep, data, **kw).stats["num_linear_steps"]) == 0
    # from init 1e-3 it is not even compiled in (largest |θ| above `linear_below`); with
    # that gate lifted, its own test at the init turns it down, with the same result
    ungated = gf.flow(_two_layer(1e-3), data, solver=gf.Auto(linear_below=1.0), **kw)
    assert int(ungated.stats["num_linear_steps"]) == 0
    assert int(ungated.stats["num_steps"]) == int(ref.stats["num_steps"])
    np.testing.assert_allclose(ungated.loss, ref.loss, rtol=1e-12)
    from gradflow._flow.options import gate_linear_start

    params = eqx.partition(_two_layer(1e-3), eqx.is_inexact_array)[0]
    assert not gate_linear_start(gf.Auto(), params).linear_start
    assert gate_linear_start(gf.Auto(linear_below=1.0), params).linear_start


def test_linear_start_needs_no_user_choice_and_can_be_switched_off():
    sol = gf.flow(_two_layer(1e-9), _teacher(), t1=10.0, save=5, progress=False)
    assert int(sol.stats["num_linear_steps"]) > 0
    assert "num_linear_steps" in sol.stats
    with pytest.raises(TypeError):
        gf.Auto(linear_start=False, not_an_option=1)
    with pytest.raises(ValueError, match="linear_growth"):
        gf.Auto(linear_growth=0.5)
    with pytest.raises(ValueError, match="linear_exit"):
        gf.Auto(linear_exit=0.0)
