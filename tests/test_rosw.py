"""The Rosenbrock-W solver (ROS34PW2 on a reused, clipped eigendecomposition of the Hessian)."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np

import gradflow as gf
from gradflow._flow.rosw import ALPHA, B_HAT, GAMMA, GAMMAS, B, RosW


def test_tableau_is_stiffly_accurate_and_consistent():
    # b is the last row of α + γ (stiffly accurate), both weight vectors sum to 1
    np.testing.assert_allclose(B, ALPHA[3] + GAMMAS[3] + GAMMA * np.eye(4)[3], atol=1e-14)
    np.testing.assert_allclose([B.sum(), B_HAT.sum()], [1.0, 1.0], atol=1e-14)


def test_rosw_is_third_order_with_a_fresh_a_frozen_and_a_truncated_w(fixed_step_errors):
    # a W-method keeps its order for any W: W from every step, W from t = 0 only (the state
    # there is far from where the flow goes), and W on 2 of the 3 directions
    for solver in (RosW(refresh_every=1), RosW(refresh_every=10**9), RosW(rank=2)):
        errs = fixed_step_errors(solver, (16, 32, 64))
        orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        assert np.all((orders > 2.6) & (orders < 3.4)), (solver.refresh_every, errs, orders)


def test_rosw_damps_a_stiff_direction_far_beyond_the_explicit_limit():
    # L = ½ yᵀAy: θ(t) = e^{−tA} θ0. At h·λ_max = 1000 an explicit method explodes; an
    # L-stable step damps that direction, and the slow one (λ = 0.1) is accurate.
    a = jnp.diag(jnp.array([1000.0, 0.1]))
    term = dfx.ODETerm(lambda t, y, args: -(a @ y))
    y0 = jnp.array([1.0, 1.0])
    solver = RosW()
    state = solver.init(term, 0.0, 1.0, y0, None)
    y1, _, _, _, _ = solver.step(term, 0.0, 1.0, y0, None, state, False)
    assert abs(float(y1[0])) < 1e-2
    np.testing.assert_allclose(float(y1[1]), np.exp(-0.1), rtol=1e-4)


def test_rosw_by_name_matches_dopri8_drop_times_and_redoes_on_a_stale_w():
    sig = [3.0, 1.0]
    data = gf.data.linear_teacher(sig, in_size=3, out_size=3, key=jax.random.key(0))
    model = gf.models.DeepLinear(3, 3, 3, 2, 1e-4, key=jax.random.key(1))
    levels = gf.analysis.drop_levels(gf.theory.plateau_levels(np.array(sig)))
    kw = dict(t1=20.0, progress=False, crossings=levels)
    ref = np.asarray(gf.flow(model, data, solver="dopri8", rtol=1e-11, **kw).crossings)
    err = {}
    for rtol in (1e-6, 1e-8):
        sol = gf.flow(model, data, solver="rosw", rtol=rtol, **kw)
        assert sol.status == "success"
        err[rtol] = np.max(np.abs(np.asarray(sol.crossings) / ref - 1))
    # third order, accuracy-limited: the drop times converge as the tolerance tightens
    assert err[1e-8] < 1e-5 and err[1e-6] > 10 * err[1e-8], err
    assert int(sol.stats["num_hessians"]) >= 1
    # W is refreshed far less often than once per step
    assert int(sol.stats["num_hessians"]) < int(sol.stats["num_accepted"]) / 2
