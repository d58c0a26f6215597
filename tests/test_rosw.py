"""The Rosenbrock-W solver (ROS34PW2 on a reused, clipped eigendecomposition of the Hessian)."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf
from gradflow._flow.rosw import ALPHA, B_HAT, GAMMA, GAMMAS, B, RosW
from gradflow._flow.subspace import orthonormalize, random_basis, subspace_eig


def test_tableau_is_stiffly_accurate_and_consistent():
    # b is the last row of α + γ (stiffly accurate), both weight vectors sum to 1
    np.testing.assert_allclose(B, ALPHA[3] + GAMMAS[3] + GAMMA * np.eye(4)[3], atol=1e-14)
    np.testing.assert_allclose([B.sum(), B_HAT.sum()], [1.0, 1.0], atol=1e-14)


def test_rosw_is_third_order_with_a_fresh_a_frozen_and_a_truncated_w(fixed_step_errors):
    # a W-method keeps its order for any W: W from every step, W from t = 0 only (the state
    # there is far from where the flow goes), and W on 2 of the 3 directions
    for solver in (RosW(refresh_every=1), RosW(refresh_every=10**9), RosW(rank=2),
                   RosW(rank=2, eig="subspace", refresh_every=1)):  # fmt: skip
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


def _staircase(depth, scale, t1):
    """A 3 × 3 deep linear net on the teacher (3, 1): model, data and `gf.flow` keywords
    with crossings at the drop levels."""
    sig = [3.0, 1.0]
    data = gf.data.linear_teacher(sig, in_size=3, out_size=3, key=jax.random.key(0))
    model = gf.models.DeepLinear(3, 3, 3, depth, scale, key=jax.random.key(1))
    levels = gf.analysis.drop_levels(gf.theory.plateau_levels(np.array(sig)))
    return model, data, dict(t1=t1, progress=False, crossings=levels)


def test_rosw_by_name_matches_dopri8_drop_times_and_reuses_its_w():
    model, data, kw = _staircase(2, 1e-4, 20.0)
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


# --------------------------------------------------------------------------------------------
# eig="subspace": the stiffest eigenpairs from Hessian-vector products


def test_subspace_iteration_finds_the_stiffest_eigenpairs():
    # J = −A, A symmetric with 4 curvatures far above the rest: 4 Ritz pairs after a few
    # sweeps match numpy's 4 most negative eigenvalues of J, with orthonormal vectors
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    curv = np.concatenate([[300.0, 120.0, 50.0, 20.0], rng.uniform(-0.5, 1.0, 36)])
    a = jnp.asarray(q @ np.diag(curv) @ q.T)
    vf = lambda y: -(a @ y)
    y = jnp.zeros(40)
    vecs, lam = subspace_eig(vf, y, random_basis(40, 4, y.dtype), 30)
    exact = np.sort(-curv)[:4]
    np.testing.assert_allclose(np.asarray(lam), exact, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(vecs.T @ vecs), np.eye(4), atol=1e-12)
    resid = np.asarray(-(a @ vecs) - vecs * lam)
    assert np.max(np.abs(resid)) < 1e-6 * 300


def test_orthonormalize_survives_dependent_columns():
    z = jnp.asarray(np.random.default_rng(1).normal(size=(30, 3)))
    z = jnp.concatenate([z, z[:, :1]], axis=1)  # the 4th column repeats the 1st
    qz = np.asarray(orthonormalize(z))
    assert np.all(np.isfinite(qz))
    np.testing.assert_allclose(qz[:, :3].T @ qz[:, :3], np.eye(3), atol=1e-10)
    # the columns still span z
    proj = qz @ np.linalg.lstsq(qz, np.asarray(z), rcond=None)[0]
    np.testing.assert_allclose(proj, np.asarray(z), atol=1e-8)


def test_subspace_rosw_takes_the_steps_of_the_dense_one():
    # a 3-layer linear net (P = 27), stiff after its escapes: W from 12 Ritz pairs of a
    # subspace iteration on Hessian-vector products does what W from the dense Hessian's
    # 12 stiffest eigenpairs does (within 5% of the steps), with the same drop times
    model, data, kw = _staircase(3, 1e-3, 400.0)
    dense = gf.flow(model, data, solver=RosW(rank=12), **kw)
    sub = gf.flow(model, data, solver=RosW(rank=12, eig="subspace"), **kw)
    assert dense.status == sub.status == "success"
    np.testing.assert_allclose(np.asarray(sub.crossings), np.asarray(dense.crossings), rtol=1e-5)
    n_dense, n_sub = int(dense.stats["num_steps"]), int(sub.stats["num_steps"])
    assert abs(n_sub - n_dense) <= 0.05 * n_dense, (n_sub, n_dense)

    # the products counted: 20 power iterations at the start, then rank × (sweeps + 1) per
    # refresh (3 sweeps from the random start, 2 warm-started) instead of P per Hessian;
    # rejected steps are charged at the accepted steps' mean (`sol.stats`)
    def charged(sol, accepted):
        n_acc, n_rej = int(sol.stats["num_accepted"]), int(sol.stats["num_rejected"])
        return accepted + round(accepted * n_rej / n_acc)

    s = RosW(rank=12, eig="subspace")
    n_h = int(sub.stats["num_hessians"])
    acc = s.init_power_iters + 12 * (s.init_subspace_sweeps + 1)
    acc += 12 * (s.subspace_sweeps + 1) * (n_h - 1)
    assert n_h >= 2 and int(sub.stats["num_hvp_evals"]) == charged(sub, acc)
    acc = s.init_power_iters + 27 * int(dense.stats["num_hessians"])
    assert int(dense.stats["num_hvp_evals"]) == charged(dense, acc)


def test_subspace_rosw_needs_a_rank():
    with pytest.raises(ValueError, match="rank=k"):
        RosW(eig="subspace")
    with pytest.raises(ValueError, match="eig='dense' or eig='subspace'"):
        RosW(eig="lanczos")


def test_subspace_rosw_as_autos_stiff_method():
    # under Auto the first refresh comes at the first stiff step, after the explicit mode's
    # resync (the random start is drawn there): the same drops and steps as the dense W
    model, data, kw = _staircase(3, 1e-3, 400.0)
    tiers = dict(dense=None, rosw_min=1)
    dense = gf.flow(model, data, solver=gf.Auto(rosw=RosW(rank=12), **tiers), **kw)
    sub = gf.flow(model, data, solver=gf.Auto(rosw=RosW(rank=12, eig="subspace"), **tiers), **kw)
    assert dense.status == sub.status == "success"
    assert int(sub.stats["num_stiff_steps"]) > 0 and int(sub.stats["num_hessians"]) >= 1
    np.testing.assert_allclose(np.asarray(sub.crossings), np.asarray(dense.crossings), rtol=1e-5)
    n_dense, n_sub = int(dense.stats["num_steps"]), int(sub.stats["num_steps"])
    assert abs(n_sub - n_dense) <= 0.05 * n_dense, (n_sub, n_dense)
