"""The exponential Rosenbrock solver (exprb43 on the dense Hessian) and `Auto`'s use of it."""

import decimal
import math

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf
from gradflow._flow.auto import Auto
from gradflow._flow.exprb import ExpRB, phi
from gradflow._flow.rkc import RKC
from gradflow._flow.rosw import RosW


def _phi_exact(z: float, k: int) -> float:
    """φ_k(z) = Σ_j z^j / (j+k)! in 60-digit decimal arithmetic (the series converges for
    every z; enough terms for |z| ≤ 60)."""
    decimal.getcontext().prec = 60
    zd, total = decimal.Decimal(z), decimal.Decimal(0)
    power = decimal.Decimal(1)
    for j in range(600):
        total += power / decimal.Decimal(math.factorial(j + k))
        power *= zd
    return float(total)


def test_phi_functions_match_their_series_on_both_sides_of_the_switch():
    z = np.array([-40.0, -3.0, -1.0001, -0.9999, -1e-3, 0.0, 1e-3, 0.9999, 1.0001, 3.0, 20.0])
    got = phi(jnp.asarray(z), 4)
    for k in range(5):
        want = np.array([_phi_exact(x, k) for x in z])
        np.testing.assert_allclose(np.asarray(got[k]), want, rtol=1e-13, atol=0)


def test_exprb_is_fourth_order_on_a_stiff_nonlinear_gradient_flow(fixed_step_errors):
    # curvatures 1, 30 and −0.5 (a saddle) plus quartic and cubic couplings (conftest)
    errs = fixed_step_errors(ExpRB(), (16, 32, 64))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 3.5) & (orders < 4.5)), (errs, orders)


def test_exprb_step_is_exact_on_a_linear_flow_through_a_saddle():
    # L = ½ yᵀAy − bᵀy with A indefinite: θ(t) = θ* + e^{−tA}(θ0 − θ*), any step size
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    evals = np.array([50.0, 10.0, 1.0, 0.1, -0.3, -2.0])
    a = q @ np.diag(evals) @ q.T
    b = rng.normal(size=6)
    loss = lambda y, args: 0.5 * y @ jnp.asarray(a) @ y - jnp.asarray(b) @ y
    term = dfx.ODETerm(lambda t, y, args: -jax.grad(loss)(y, args))
    y0 = jnp.asarray(rng.normal(size=6))
    h = 2.0  # h·λ_max = 100 (stiff) and an unstable growth of e^4
    solver = ExpRB()
    state = solver.init(term, 0.0, h, y0, None)
    y1, err, _, _, _ = solver.step(term, 0.0, h, y0, None, state, False)
    star = np.linalg.solve(a, b)
    exact = star + q @ np.diag(np.exp(-h * evals)) @ q.T @ (np.asarray(y0) - star)
    np.testing.assert_allclose(np.asarray(y1), exact, rtol=1e-12, atol=1e-12)
    # the nonlinear remainders D_i vanish: the error estimate is rounding only (the state
    # grows by e^4 and is damped by e^-100 within one step)
    assert float(jnp.max(jnp.abs(err))) < 1e-10


def test_auto_uses_rosw_for_small_and_mid_sized_models_and_rkc_for_large_ones():
    auto = Auto()
    assert isinstance(auto._stiff(jnp.zeros(auto.dense_max)), RosW)
    assert auto._stiff(jnp.zeros(auto.dense_max)).rank is None  # every direction in W
    assert isinstance(auto._stiff(jnp.zeros(auto.dense_max + 1)), RKC)
    assert isinstance(auto._stiff(jnp.zeros(auto.rosw_min)), RosW)
    assert isinstance(auto._stiff(jnp.zeros(auto.rosw_max)), RosW)
    assert isinstance(auto._stiff(jnp.zeros(auto.rosw_max + 1)), RKC)
    assert isinstance(Auto(dense=ExpRB())._stiff(jnp.zeros(3)), ExpRB)
    assert isinstance(Auto(dense=None)._stiff(jnp.zeros(3)), RKC)
    assert isinstance(Auto(dense=None, rosw_min=1)._stiff(jnp.zeros(3)), RosW)
    assert isinstance(Auto(rosw=None)._stiff(jnp.zeros(auto.rosw_min)), RKC)


def _type_iii():
    # quadratic net (12 parameters) on the V5 teacher diag(2, −1): plateaus ∝ 1/σ, stiff
    # after the first drop, so `auto` runs its dense stiff method there: RosW (default) or
    # ExpRB (fewer steps, a Hessian and `eigh` per step)
    teacher = jnp.diag(jnp.array([2.0, -1.0]))
    model = gf.models.TwoLayer(2, 4, 1, "quadratic", init_scale=1e-2, key=jax.random.key(1))
    loss = lambda m, d: gf.data.quadratic_population_loss(m, teacher)
    data = gf.Dataset(teacher, teacher)
    levels = [0.5 * (5.5 + 4 / 3), 0.5 * 4 / 3]
    kw = dict(t1=120.0, loss=loss, save=None, progress=False, crossings=levels)
    ref = gf.flow(model, data, solver="dopri8", rtol=1e-12, atol=1e-12, **kw)
    assert np.all(np.isfinite(ref.crossings))
    return model, data, kw, ref


def _check_type_iii(sol, ref):
    assert sol.status == "success" and int(sol.stats["num_stiff_steps"]) > 0
    assert int(sol.stats["num_hessians"]) >= 1
    # the first drop is Tsit5's (1e-5 off at rtol 1e-6, as with solver="tsit5"); the second
    # comes after the stiff plateau
    np.testing.assert_allclose(sol.crossings, ref.crossings, rtol=3e-5)
    assert float(sol.loss[-1]) < 1e-12


def test_default_auto_on_a_type_iii_flow_matches_dopri8():
    model, data, kw, ref = _type_iii()
    sol = gf.flow(model, data, **kw)  # the default: auto, with RosW as its dense method
    _check_type_iii(sol, ref)


@pytest.mark.slow
def test_auto_with_exprb_matches_dopri8_and_both_dense_methods_beat_rkc():
    model, data, kw, ref = _type_iii()
    rkc = gf.flow(model, data, solver=Auto(dense=None, rosw=None), **kw)
    for dense in (RosW(), ExpRB()):
        sol = gf.flow(model, data, solver=Auto(dense=dense), **kw)
        _check_type_iii(sol, ref)
        assert int(sol.stats["num_steps"]) < int(rkc.stats["num_steps"])


@pytest.mark.parametrize("name", ["exprb"])
def test_exprb_by_name(name):
    f = lambda p: 0.5 * jnp.sum(jnp.array([100.0, 1.0]) * p**2)
    sol = gf.solve_flow(lambda p, a: f(p), jnp.array([1.0, 1.0]), t1=3.0, solver=name,
                        save=[3.0], progress=False)  # fmt: skip
    np.testing.assert_allclose(sol.params, [np.exp(-300.0), np.exp(-3.0)], rtol=1e-6, atol=1e-14)
    assert int(sol.stats["num_steps"]) < 30


def test_sweeps_default_to_auto_without_the_dense_branch():
    # under vmap both branches of auto's mode switch run every step (see `sweep_solver`)
    from gradflow._sweep.sweep import sweep_solver

    for default in (None, "auto", "AUTO"):
        chosen = sweep_solver(default)
        assert isinstance(chosen, Auto) and chosen.dense is None and chosen.rosw is None
    explicit = Auto()
    assert sweep_solver(explicit) is explicit and sweep_solver("rkc") == "rkc"


def test_summaries_after_the_solve_equal_summaries_in_the_save_loop(monkeypatch):
    # small save grids keep the states and compute loss and metrics after the solve
    # (`solve.POST_SUMMARY_MAX`); the record must be that of summaries inside diffrax's loop
    import gradflow._flow.solve as solve

    f = lambda p, a: 0.5 * jnp.sum(jnp.array([4.0, 1.0, 0.25]) * (p - 1.0) ** 2) + 0.1 * p[0] ** 4
    kw = dict(t1=5.0, save=7, metrics={"norm": lambda p, a: jnp.linalg.norm(p)},
              solver="tsit5", progress=False)  # fmt: skip
    p0 = jnp.array([0.3, -0.2, 0.1])
    post = solve.solve_flow(f, p0, **kw)
    monkeypatch.setattr(solve, "POST_SUMMARY_MAX", 0)
    inloop = solve.solve_flow(f, p0, **kw)
    np.testing.assert_array_equal(post.t, inloop.t)
    np.testing.assert_allclose(post.loss, inloop.loss, rtol=1e-14, atol=0)
    np.testing.assert_allclose(post.metrics["norm"], inloop.metrics["norm"], rtol=1e-14)
    assert int(post.stats["num_steps"]) == int(inloop.stats["num_steps"])


def test_auto_rms_norm_never_hides_one_component_more_than_rms_cap_times():
    # 400 components at 0.1× their tolerance and one at 50×: the plain RMS norm (2.5) would
    # pass a step whose worst component is 50× over; capped, the judged error is 50/10
    y = jnp.ones(400)
    tol = 1e-9 + 1e-6 * 1.0
    err = jnp.full(400, 0.1 * tol).at[0].set(50 * tol)
    plain = np.sqrt((50.0**2 + 399 * 0.1**2) / 400)
    for cap, expected in ((None, plain), (10.0, 5.0), (100.0, plain)):
        auto = gf.Auto(rtol=1e-6, atol=1e-9, rms_cap=cap)
        judged = np.max(np.abs(np.asarray(auto._rms_equivalent(err, y, y)))) / tol
        np.testing.assert_allclose(judged, expected, rtol=1e-12)
