"""Tests of `gradflow.theory` against the numbers of VALIDATION.md and independent derivations.

Every expected value is either printed in VALIDATION.md (V1, V2, V4, V12) and checked to its
printed precision, or recomputed here by a different route (direct ODE integration, the
w = u^(1/L) quadrature, explicit loops) so that a wrong formula fails.
"""

import warnings

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from gradflow import theory as th

S3 = np.array([3.0, 2.0, 1.0])


# --------------------------------------------------------------------------------------------
# V1: the Saxe sigmoid


def test_v1_loss_table():
    t = np.array([0.0, 2.0, 2.3, 3.0, 3.5, 4.0, 5.0, 7.0, 8.0])
    expected = np.array(
        [6.999994, 6.542775, 5.031094, 2.218500, 1.278908, 0.564539, 0.478714, 0.103062, 0.005116]
    )
    loss = th.saxe_loss(t, S3, 1e-6)
    assert loss.shape == t.shape
    np.testing.assert_allclose(loss, expected, rtol=0, atol=6e-7)
    # t = 10: "≈ 2e-6"
    assert 1.5e-6 < th.saxe_loss(10.0, S3, 1e-6) < 2.5e-6


def test_v1_half_times():
    np.testing.assert_allclose(
        th.saxe_half_time(S3, 1e-6), [2.4857, 3.6272, 6.9078], rtol=0, atol=5e-5
    )
    # the half-time really is where the sigmoid reaches s/2
    np.testing.assert_allclose(th.saxe_mode(th.saxe_half_time(S3, 1e-6), S3, 1e-6), S3 / 2)


def test_v12d_escape_from_rank1_saddle():
    assert abs(th.saxe_half_time(2.0, 1e-8) - 4.77846) <= 5e-6
    assert abs(th.saxe_half_time(2.0, 1e-8) - 0.25 * np.log(2 / 1e-8 - 1)) <= 1e-13


def test_saxe_mode_solves_the_ode():
    s, u0 = 2.0, 1e-4
    t_eval = np.linspace(0.0, 6.0, 13)
    sol = solve_ivp(
        lambda t, u: 2 * u * (s - u),
        (0, 6),
        [u0],
        method="DOP853",
        t_eval=t_eval,
        rtol=1e-12,
        atol=1e-16,
    )
    np.testing.assert_allclose(th.saxe_mode(t_eval, s, u0), sol.y[0], rtol=1e-8)


def test_saxe_mode_matches_textbook_formula_and_time_inverts_it():
    rng = np.random.default_rng(1)
    s = rng.uniform(0.5, 3.0, 50)
    u0 = s * rng.uniform(1e-4, 0.9, 50)
    t = rng.uniform(0.0, 2.0, 50)
    e = np.exp(2 * s * t)
    np.testing.assert_allclose(th.saxe_mode(t, s, u0), s * e / (e - 1 + s / u0), rtol=1e-13)
    uf = s * rng.uniform(1e-4, 0.999, 50)
    np.testing.assert_allclose(th.saxe_mode(th.saxe_time(s, u0, uf), s, u0), uf, rtol=1e-11)


def test_saxe_mode_is_stable_for_tiny_init_and_large_time():
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        assert th.saxe_mode(1e4, 3.0, 1e-30) == 3.0
        assert abs(th.saxe_mode(0.0, 3.0, 1e-24) / 1e-24 - 1) < 1e-12
        late = th.saxe_loss(np.array([1e4]), S3, 1e-30)
    assert np.all(np.isfinite(late)) and late[0] == 0.0


def test_saxe_loss_shapes():
    assert np.ndim(th.saxe_loss(1.0, S3, 1e-6)) == 0
    assert th.saxe_loss(np.zeros((4, 2)), S3, [1e-6, 1e-5, 1e-4]).shape == (4, 2)
    assert th.saxe_loss(0.0, S3, 1e-6, residual=0.5) == pytest.approx(7.5 - 6e-6 + 1.5e-12)


# --------------------------------------------------------------------------------------------
# V2: plateau levels and random-init predictions


def test_plateau_levels_and_midpoints():
    np.testing.assert_allclose(th.plateau_levels((3, 2, 1)), [7.0, 2.5, 0.5, 0.0], atol=1e-15)
    np.testing.assert_allclose(th.plateau_levels((3, 2, 1), 0.25), [7.25, 2.75, 0.75, 0.25])
    np.testing.assert_allclose(th.drop_midpoints((3, 2, 1)), [4.75, 1.5, 0.25], atol=1e-15)
    np.testing.assert_allclose(th.plateau_levels((2, 2, 2)), [6.0, 4.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="`s`.*descending"):
        th.plateau_levels((1, 2, 3))


def test_v2_expected_half_times():
    # VALIDATION prints 6.735 for the second entry: the formula gives 6.734468, i.e. 6.7345
    # rounded twice; hence 6e-4 rather than 5e-4.
    np.testing.assert_allclose(
        th.expected_half_times(S3, 8, 1e-6), [4.557, 6.735, 13.122], rtol=0, atol=6e-4
    )
    assert th.expected_half_times(2.0, 8, 1e-6) == pytest.approx(6.734468, abs=1e-6)
    np.testing.assert_allclose(
        th.expected_half_times(S3, 50, 1e-6), [4.252, 6.276, 12.206], rtol=0, atol=5e-4
    )


def test_random_init_u0_matches_direct_computation():
    rng = np.random.default_rng(0)
    h, eps = 8, 1e-6
    w1 = eps * rng.standard_normal((h, 3))
    w2 = eps * rng.standard_normal((3, h))
    direct = np.array([np.sum((w2[k, :] + w1[:, k]) ** 2) / 4 for k in range(3)])
    np.testing.assert_allclose(th.random_init_u0(w1, w2), direct, rtol=1e-13)
    # rotated teacher, non-square: D_in = 5, D_out = 3
    w1 = eps * rng.standard_normal((h, 5))
    u, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    v, _ = np.linalg.qr(rng.standard_normal((5, 3)))
    direct = np.array([np.sum((w2.T @ u[:, k] + w1 @ v[:, k]) ** 2) / 4 for k in range(3)])
    np.testing.assert_allclose(th.random_init_u0(w1, w2, u, v), direct, rtol=1e-13)
    assert th.random_init_u0(w1, w2).shape == (3,)


def test_random_init_decoupled_case_reduces_to_v1():
    w = 1e-3 * np.eye(3)
    np.testing.assert_allclose(th.random_init_u0(w, w), [1e-6] * 3, rtol=1e-13)
    np.testing.assert_allclose(
        th.random_init_half_times(S3, w, w), th.saxe_half_time(S3, 1e-6), rtol=1e-14
    )
    np.testing.assert_allclose(
        th.random_init_half_times(S3, w, w), [2.4857, 3.6272, 6.9078], rtol=0, atol=5e-5
    )


def test_drop_times_random_init():
    rng = np.random.default_rng(0)
    w1 = 1e-6 * rng.standard_normal((50, 3))
    w2 = 1e-6 * rng.standard_normal((3, 50))
    drops = th.drop_times_random_init(S3, w1, w2)
    halves = th.random_init_half_times(S3, w1, w2)
    np.testing.assert_allclose(halves - drops, np.log(1 + np.sqrt(2)) / (2 * S3), rtol=1e-10)
    assert np.all(np.abs(halves - drops - 0.8814 / (2 * S3)) < 1e-4)
    # each mode's own loss is at its midpoint s^2/4 at its drop time
    u0 = th.random_init_u0(w1, w2)
    for k in range(3):
        loss_k = th.saxe_loss(drops[k], S3[k : k + 1], u0[k])
        assert abs(loss_k - S3[k] ** 2 / 4) < 1e-10 * S3[k] ** 2


def test_random_init_errors():
    w1, w2 = np.zeros((4, 3)), np.zeros((3, 5))
    with pytest.raises(ValueError, match="`w2`"):
        th.random_init_u0(w1, w2)
    with pytest.raises(ValueError, match="`u`"):
        th.random_init_u0(np.ones((4, 3)), np.ones((3, 4)), u=np.eye(2))
    with pytest.raises(ValueError, match="smaller"):
        th.random_init_half_times(S3, np.ones((4, 3)), np.ones((3, 4)))


# --------------------------------------------------------------------------------------------
# V4: depth law


@pytest.mark.parametrize(
    "depth, s, a0, expected",
    [
        (2, 1.0, 1e-2, 4.6051),
        (2, 1.0, 1e-3, 6.9078),
        (3, 1.0, 0.1, 9.1447),
        (3, 1.0, 1e-2, 99.1497),
        (3, 1.0, 1e-3, 999.1497),
        (3, 2.0, 1e-2, 49.6626),
    ],
)
def test_v4_depth_half_times(depth, s, a0, expected):
    assert th.depth_half_time(s, a0, depth) == pytest.approx(expected, rel=1e-5)
    assert th.depth_mode_time(s, a0**depth, s / 2, depth) == pytest.approx(expected, rel=1e-5)


def test_depth_two_agrees_with_saxe():
    s = np.array([0.3, 1.0, 2.0, 5.0])[:, None]
    u0 = np.array([1e-36, 1e-12, 1e-4, 0.1])[None, :]
    for uf_frac in (0.5, 0.999999):
        np.testing.assert_allclose(
            th.depth_mode_time(s, u0 * s, uf_frac * s, 2),
            th.saxe_time(s, u0 * s, uf_frac * s),
            rtol=1e-10,
        )
    t = np.linspace(0, 30, 7)
    np.testing.assert_allclose(th.depth_mode(t, 2.0, 1e-8, 2), th.saxe_mode(t, 2.0, 1e-8))
    np.testing.assert_allclose(
        th.depth_loss(t, S3, 1e-6, 2), th.saxe_loss(t, S3, 1e-6), rtol=1e-13
    )


def _w_quadrature_time(s, u0, uf, depth):
    """The route of VALIDATION V4: w = u^(1/L), dt = dw / (w^(L-1) (s - w^L)), split."""
    w0, wf = u0 ** (1 / depth), uf ** (1 / depth)
    singular = (w0 ** (2 - depth) - wf ** (2 - depth)) / ((depth - 2) * s)
    smooth, _ = quad(lambda w: w / (s * (s - w**depth)), w0, wf, epsabs=0, epsrel=1e-13)
    return singular + smooth


@pytest.mark.parametrize("depth", [3, 4, 6])
@pytest.mark.parametrize("u0", [1e-36, 1e-9, 1e-2])
def test_depth_mode_time_matches_w_quadrature(depth, u0):
    for s in (0.5, 1.0, 3.0):
        for uf in (0.5 * s, 0.9 * s):
            expected = _w_quadrature_time(s, u0 * s, uf, depth)
            assert th.depth_mode_time(s, u0 * s, uf, depth) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_depth_mode_solves_the_ode(depth):
    s, u0 = 1.5, 1e-2
    t_end = 2.0 * th.depth_mode_time(s, u0, 0.99 * s, depth)
    t_eval = np.linspace(0.0, t_end, 25)
    sol = solve_ivp(
        lambda t, u: depth * u ** (2 - 2 / depth) * (s - u),
        (0, t_end),
        [u0],
        method="DOP853",
        t_eval=t_eval,
        rtol=1e-12,
        atol=1e-18,
    )
    np.testing.assert_allclose(th.depth_mode(t_eval, s, u0, depth), sol.y[0], rtol=1e-7)
    # and the time function agrees with the trajectory at the midpoint
    u_mid = sol.y[0][12]
    assert th.depth_mode_time(s, u0, u_mid, depth) == pytest.approx(t_eval[12], rel=1e-7)


def test_depth_one_closed_form():
    s, u0, uf = 2.0, 0.1, 1.7
    assert th.depth_mode_time(s, u0, uf, 1) == pytest.approx(np.log((s - u0) / (s - uf)))
    t = np.array([0.0, 0.5, 3.0])
    np.testing.assert_allclose(th.depth_mode(t, s, u0, 1), s - (s - u0) * np.exp(-t))


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("a0", [1e-2, 1e-3])
def test_depth_mode_at_half_time_is_half(depth, a0):
    for s in (1.0, 2.0):
        t_half = th.depth_half_time(s, a0, depth)
        u = th.depth_mode(t_half, s, a0**depth, depth)
        assert abs(u / (s / 2) - 1) <= 1e-9


def test_depth_mode_limits_and_monotonicity():
    s, u0 = 2.0, 1e-12
    assert th.depth_mode(0.0, s, u0, 3) == u0
    assert th.depth_mode(1e15, s, u0, 3) == s
    t = np.concatenate([[0.0], np.logspace(-3, 7, 300)])
    u = th.depth_mode(t, s, u0, 3)
    assert np.all(np.diff(u) >= 0) and u[0] == u0 and u[-1] == s
    # several modes at once, broadcasting t against (s, u0)
    loss = th.depth_loss(t, S3, 1e-9, 3, residual=0.1)
    assert loss.shape == t.shape
    assert loss[0] == pytest.approx(7.1, rel=1e-8) and loss[-1] == pytest.approx(0.1)
    single = sum(0.5 * (sk - th.depth_mode(t, sk, 1e-9, 3)) ** 2 for sk in S3)
    np.testing.assert_allclose(loss, single + 0.1, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# escape laws, spectra, input checks


def test_escape_time_law():
    assert th.escape_time_law(1.0, 1e-3, 3) == pytest.approx(1000.0, rel=1e-14)
    assert th.escape_time_law(2.0, 1e-2, 4) == pytest.approx(1e4 / 4, rel=1e-14)
    # leading order of the exact V4 times: O(1) offset for L = 3, vanishing gap for L = 2
    assert abs(th.escape_time_law(1.0, 1e-3, 3) - th.depth_half_time(1.0, 1e-3, 3)) < 1.0
    assert th.escape_time_law(1.0, 1e-6, 2) == pytest.approx(
        th.depth_half_time(1.0, 1e-6, 2), rel=1e-10
    )
    with pytest.raises(ValueError, match="`depth`"):
        th.escape_time_law(1.0, 1e-3, 1)


def test_width_gamma_escape_time():
    s, w = 1.5, np.array([10.0, 100.0, 1000.0])
    for gamma in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(
            th.width_gamma_escape_time(s, w, gamma),
            th.expected_half_times(s, w, w ** (-gamma / 2)),
            rtol=1e-13,
        )
    np.testing.assert_allclose(th.width_gamma_escape_time(s, w, 1.0), np.log(3.0) / 3.0)


def test_power_law_spectrum():
    np.testing.assert_allclose(th.power_law_spectrum(4, 1.0, 2.0), [2.0, 1.0, 2 / 3, 0.5])
    np.testing.assert_allclose(th.power_law_spectrum(3, 0.0), [1.0, 1.0, 1.0])
    th.plateau_levels(th.power_law_spectrum(10, 1.5))  # descending by construction
    with pytest.raises(ValueError, match="`n`"):
        th.power_law_spectrum(0, 1.0)


def test_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="`u0`"):
        th.saxe_mode(1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="`u0`"):
        th.saxe_half_time(1.0, 0.0)
    with pytest.raises(ValueError, match="`s`"):
        th.saxe_time(-1.0, 0.1, 0.5)
    with pytest.raises(ValueError, match="`uf`"):
        th.depth_mode_time(1.0, 0.1, 1.0, 3)
    with pytest.raises(ValueError, match="`depth`"):
        th.depth_mode(1.0, 1.0, 0.1, 0)
    with pytest.raises(ValueError, match="`depth`"):
        th.depth_half_time(1.0, 0.1, 2.5)
    with pytest.raises(ValueError, match="`a0`"):
        th.depth_half_time(1.0, 1.5, 3)
    with pytest.raises(ValueError, match="`t`"):
        th.depth_mode(-1.0, 1.0, 0.1, 3)
    with pytest.raises(ValueError, match="`t`"):
        th.saxe_mode(np.nan, 1.0, 0.1)
