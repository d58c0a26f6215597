"""Tests of the paper-specific closed forms in `gradflow.theory` (VALIDATION V5, V8, V9; THEORY §4,
§5, §8).

Printed numbers are checked to their printed precision; everything else is recomputed here by an
independent route (direct ODE integration, plain quadrature of the raw integrand, linprog,
numpy lstsq), so that a wrong formula fails.
"""

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq, linprog

from gradflow import theory as th

# --------------------------------------------------------------------------------------------
# V8: merged key-query attention

T_V8 = np.array([2.0, 3.0, 3.5, 4.0, 5.0, np.inf])
SIGMA_V8 = np.array([0.001488, 0.074351, 0.354064, 0.721313, 0.858065, 0.861111])
LOSS_V8 = np.array([3.988107, 3.430870, 1.749811, 0.646338, 0.555599, 0.555556])


def test_v8_table():
    sigma = th.attention_merged_sigma(T_V8, 4, 31, 1e-3)
    loss = th.attention_merged_loss(T_V8, 4, 31, 1e-3)
    np.testing.assert_allclose(sigma, SIGMA_V8, rtol=0, atol=5e-7)
    np.testing.assert_allclose(loss, LOSS_V8, rtol=0, atol=5e-7)
    np.testing.assert_allclose(loss[-1], 4 * 5 / (31 + 1 + 4), rtol=1e-14)


def test_v8_half_rise_times():
    t_half = th.attention_merged_half_time(4, 31, np.array([1e-3, 1e-2]))
    np.testing.assert_allclose(t_half, [3.5898, 2.4385], rtol=0, atol=5e-5)
    sigma = th.attention_merged_sigma(t_half, 4, 31, np.array([1e-3, 1e-2]))
    np.testing.assert_allclose(sigma, 0.5 / (1 + 5 / 31), rtol=1e-13)


def test_v8_against_ode():
    # The textbook formula (10) and the loss D - 2 sigma D + sigma^2 c D, and the Saxe ODE
    # u' = 2u(s - c u) for u = s * sigma integrated directly.
    d, n, w = 9, 20, 3e-2
    s, c = 3.0, 1 + 10 / 20
    t = np.linspace(0.0, 4.0, 9)
    e = np.exp(2 * s * t)
    sigma_ref = e / (c * (e - 1) + s / w**2)
    np.testing.assert_allclose(th.attention_merged_sigma(t, d, n, w), sigma_ref, rtol=1e-12)
    loss_ref = d - 2 * sigma_ref * d + sigma_ref**2 * c * d
    np.testing.assert_allclose(th.attention_merged_loss(t, d, n, w), loss_ref, rtol=1e-12)
    sol = solve_ivp(
        lambda _, u: 2 * u * (s - c * u), (0, 4), [w**2], t_eval=t, rtol=1e-12, atol=1e-16
    )
    np.testing.assert_allclose(sol.y[0] / s, sigma_ref, rtol=1e-8)
    # large init (sigma starts above its final value) and the infinite-context limit
    np.testing.assert_allclose(th.attention_merged_sigma(0.0, 4, 31, 2.0), 2.0, rtol=1e-14)
    np.testing.assert_allclose(th.attention_merged_sigma(np.inf, 4, np.inf, 1e-3), 1.0)
    # no overflow deep in the tail: the loss has converged to L(inf)
    np.testing.assert_allclose(th.attention_merged_loss(1e4, 4, 31, 1e-3), 4 * 5 / 36, rtol=1e-15)


# --------------------------------------------------------------------------------------------
# V9: separate key-query attention

LAM_V9 = np.array([0.4, 0.3, 0.2, 0.1])


def test_v9_plateau_levels_and_weights():
    levels = th.attention_plateau_losses(LAM_V9[::-1], 31)  # any order; learned largest first
    np.testing.assert_allclose(levels, [1.0, 0.64058, 0.37737, 0.20980, 0.13600], atol=5e-6)
    np.testing.assert_allclose(
        th.attention_plateau_losses(LAM_V9, np.inf), [1.0, 0.6, 0.3, 0.1, 0.0], atol=1e-15
    )
    weights = th.attention_plateau_weights(LAM_V9, 31)
    np.testing.assert_allclose(weights, [1.3097, 1.4301, 1.6120, 1.9470], atol=5e-5)
    # Eq. (20) is the fixed point of Eq. (21)
    a = 1 + (1 + 1.0 / LAM_V9) / 31
    np.testing.assert_allclose(LAM_V9**2 * weights**2, LAM_V9**3 * a * weights**5, rtol=1e-13)
    # the drop between plateaus equals the head's contribution lam / a
    np.testing.assert_allclose(-np.diff(levels), LAM_V9 / a, rtol=1e-13)


@pytest.mark.parametrize(
    "lam, v0, expected", [(0.4, 1e-2, 616.08), (0.1, 1e-2, 9904.05), (0.4, 1e-3, 6241.08)]
)
def test_v9_escape_times(lam, v0, expected):
    t = th.attention_escape_time(lam, 1.0, 31, v0)
    np.testing.assert_allclose(t, expected, rtol=1e-5)
    # independent: plain quadrature of the raw integrand (1/v0 part in log variable)
    a = 1 + (1 + 1.0 / lam) / 31
    v_end = 0.5 * th.attention_plateau_weights(LAM_V9, 31)[list(LAM_V9).index(lam)]

    def dt_dlogv(y):
        v = np.exp(y)
        return v / (lam**2 * v**2 - lam**3 * a * v**5)

    ref = quad(dt_dlogv, np.log(v0), np.log(v_end), epsabs=0, epsrel=1e-13, limit=200)[0]
    np.testing.assert_allclose(t, ref, rtol=1e-11)


def test_v9_escape_against_ode_and_leading_term():
    lam, trace, n, v0, v1 = 0.3, 1.0, 31, 0.05, 1.2
    t = th.attention_escape_time(lam, trace, n, v0, v_end=v1)
    a = 1 + (1 + trace / lam) / n

    def hit(_, v):
        return v[0] - v1

    hit.terminal = True
    sol = solve_ivp(
        lambda _, v: lam**2 * v**2 - lam**3 * a * v**5,
        (0, 1e5),
        [v0],
        events=hit,
        rtol=1e-12,
        atol=1e-14,
    )
    np.testing.assert_allclose(t, sol.t_events[0][0], rtol=1e-8)
    # Type-III scaling: t ~ 1/(lam^2 v0) as v0 -> 0
    v0s = np.array([1e-4, 1e-6, 1e-8])
    ts = th.attention_escape_time(lam, trace, n, v0s)
    np.testing.assert_allclose(ts * lam**2 * v0s, 1.0, rtol=2e-3)
    with pytest.raises(ValueError, match="fixed point"):
        th.attention_escape_time(lam, trace, n, 0.01, v_end=2.0)


# --------------------------------------------------------------------------------------------
# V5: Type III escape of one aligned quadratic unit


@pytest.mark.parametrize("v0, expected", [(1e-2, 9.86680), (1e-3, 99.86681), (1e-4, 999.86681)])
def test_v5_crossing_times(v0, expected):
    np.testing.assert_allclose(th.quadratic_unit_escape_time(v0), expected, rtol=1e-5)


def test_v5_against_full_loss_and_ode():
    # Integrate v' = 2 v^2 (5 - 6 v^3) and find when the V5 population loss crosses 41/12.
    tt = np.diag([2.0, -1.0])

    def loss(v):
        m = np.diag([2 * v**3, 0.0])
        r = tt - m
        return 0.5 * (np.trace(r) ** 2 + 2 * np.sum(r**2))

    assert loss(0.0) == pytest.approx(5.5)
    assert loss((5 / 6) ** (1 / 3)) == pytest.approx(4 / 3, rel=1e-14)
    mid = 0.5 * (5.5 + 4 / 3)
    v_c = brentq(lambda v: loss(v) - mid, 1e-3, (5 / 6) ** (1 / 3))
    assert 2 * v_c**3 == pytest.approx(0.488155, abs=5e-7)
    v0 = 1e-2

    def hit(_, v):
        return v[0] - v_c

    hit.terminal = True
    sol = solve_ivp(
        lambda _, v: 2 * v**2 * (5 - 6 * v**3), (0, 100), [v0], events=hit, rtol=1e-12, atol=1e-16
    )
    np.testing.assert_allclose(th.quadratic_unit_escape_time(v0), sol.t_events[0][0], rtol=1e-8)
    # generalised constants: v' = 2 v^2 (lam - c v^3)
    lam, c = 2.0, 3.0
    v_c = (lam / c * (1 - 2**-0.5)) ** (1 / 3)
    ref = quad(lambda v: 1 / (2 * v**2 * (lam - c * v**3)), 0.02, v_c, epsrel=1e-13)[0]
    np.testing.assert_allclose(th.quadratic_unit_escape_time(0.02, lam, c), ref, rtol=1e-11)


def test_type3_blowup_time():
    np.testing.assert_allclose(th.type3_blowup_time(10.0, 1e-2), 10.0, rtol=1e-14)
    # V5: exact crossing time = 1/(10 v0) - 0.1332
    for v0 in (1e-3, 1e-4):
        diff = th.type3_blowup_time(10.0, v0) - th.quadratic_unit_escape_time(v0)
        assert diff == pytest.approx(0.1332, abs=1e-4)
    # degree p: v' = lam v^p blows up at 1/((p-1) lam v0^(p-1)); check p = 3 against the ODE
    lam, v0 = 2.0, 0.1
    t_b = th.type3_blowup_time(lam, v0, degree=3)
    assert t_b == pytest.approx(1 / (2 * lam * v0**2), rel=1e-14)
    sol = solve_ivp(lambda _, v: lam * v**3, (0, 0.999 * t_b), [v0], rtol=1e-12, atol=1e-14)
    exact = (v0**-2 - 2 * lam * 0.999 * t_b) ** -0.5
    np.testing.assert_allclose(sol.y[0, -1], exact, rtol=1e-6)
    with pytest.raises(ValueError, match="degree"):
        th.type3_blowup_time(1.0, 0.1, degree=1)


def _blowup_ode(v0, u0, lam, big=1e8):
    """Independent reference: integrate (14) until |v| = big; the rest takes ≈ 1/(λ·big)."""

    def rhs(_, y):
        return np.concatenate([[np.sum(lam * y[1:] ** 2)], 2 * lam * y[0] * y[1:]])

    hit = lambda _, y: abs(y[0]) - big
    hit.terminal = True
    y0 = np.concatenate([[v0], u0])
    sol = solve_ivp(rhs, (0, 1e9), y0, method="DOP853", rtol=1e-12, atol=1e-30, events=hit)
    return sol.t_events[0][0]


def test_quadratic_blowup_times_random_units():
    lam = np.array([5.0, -1.0, 2.0])
    rng = np.random.default_rng(0)
    v0, u0 = 1e-2 * rng.normal(size=8), 1e-2 * rng.normal(size=(8, 3))
    v0[0], v0[1] = 0.0, -4e-3  # a unit starting at v = 0; one that turns (v changes sign)
    times = th.quadratic_blowup_times(v0, u0, lam)
    ref = [_blowup_ode(v, u, lam) for v, u in zip(v0, u0)]
    np.testing.assert_allclose(times, ref, rtol=1e-7)
    # the aligned balanced unit: 1/(2 λ1 v0), the Type-III blow-up law
    aligned = th.quadratic_blowup_times([1e-3], [[np.sqrt(2) * 1e-3, 0, 0]], lam)
    np.testing.assert_allclose(aligned, th.type3_blowup_time(10.0, 1e-3), rtol=1e-10)
    # a unit with only negative-eigenvalue weight and v > 0 turns and escapes to v → −∞
    neg = th.quadratic_blowup_times([1e-3], [[0.0, 1e-2, 0.0]], lam)
    np.testing.assert_allclose(neg, _blowup_ode(1e-3, np.array([0.0, 1e-2, 0.0]), lam), rtol=1e-7)
    assert th.quadratic_blowup_times([1e-2], [[0.0, 0.0, 0.0]], lam)[0] == np.inf
    with pytest.raises(ValueError, match="shape"):
        th.quadratic_blowup_times([1e-2, 1e-2], [[1e-2, 0.0, 0.0]], lam)


# --------------------------------------------------------------------------------------------
# Diagonal linear networks (Pesme & Flammarion)


def _min_l1(x, y):
    d = x.shape[1]
    res = linprog(np.ones(2 * d), A_eq=np.hstack([x, -x]), b_eq=y, bounds=(0, None))
    return res.x[:d] - res.x[d:]


def _check_kkt(x, y, times, saddles):
    n = x.shape[0]
    scale = np.max(np.abs(x.T @ y)) / n
    assert np.all(np.diff(times) > 0)
    s = np.zeros(x.shape[1])
    prev_t, beta = 0.0, np.zeros(x.shape[1])
    for t, beta_next in zip(times, saddles):
        s = s - (t - prev_t) * (x.T @ (x @ beta - y) / n)  # S integrates -grad along the plateau
        assert np.all(np.abs(s) <= 1 + 1e-9)  # the mirror variable never leaves [-1, 1]
        assert np.isclose(np.max(np.abs(s)), 1.0)  # a jump happens when one coordinate hits 1
        prev_t, beta = t, beta_next
        g = x.T @ (x @ beta - y) / n
        active = np.abs(beta) > 1e-12
        assert np.all(np.abs(g[active]) < 1e-8 * scale)  # stationary on the support
        np.testing.assert_allclose(s[active], np.sign(beta[active]), atol=1e-9)  # sign = S
        inside = np.abs(s) < 1 - 1e-9
        assert np.all(beta[inside] == 0)
        edge = ~active & ~inside
        assert np.all(s[edge] * g[edge] >= -1e-8 * scale)  # held at 0 only if pushed inward


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diagonal_jumps_underdetermined(seed):
    rng = np.random.default_rng(seed)
    n, d = 6, 12
    x = rng.standard_normal((n, d))
    beta_star = np.zeros(d)
    beta_star[[1, 4, 7]] = [1.5, -2.0, 0.7]
    y = x @ beta_star + 0.3 * rng.standard_normal(n)
    times, saddles = th.diagonal_linear_jumps(x, y)
    assert saddles.shape == (len(times), d)
    np.testing.assert_allclose(times[0], n / np.max(np.abs(x.T @ y)), rtol=1e-14)
    assert np.count_nonzero(saddles[0]) == 1
    np.testing.assert_allclose(x @ saddles[-1], y, atol=1e-10)  # interpolates
    np.testing.assert_allclose(saddles[-1], _min_l1(x, y), atol=1e-8)
    _check_kkt(x, y, times, saddles)


def test_diagonal_jumps_overdetermined_and_orthogonal():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 4))
    y = rng.standard_normal(20)
    times, saddles = th.diagonal_linear_jumps(x, y)
    np.testing.assert_allclose(saddles[-1], np.linalg.lstsq(x, y, rcond=None)[0], atol=1e-10)
    _check_kkt(x, y, times, saddles)
    # orthogonal design, X^T X = n I: coordinate i jumps at n/|X^T y|_i straight to its LS value
    n = 4
    x = 2.0 * np.eye(n)
    y = np.array([3.0, -1.0, 0.5, 2.0])
    times, saddles = th.diagonal_linear_jumps(x, y)
    xty = np.abs(x.T @ y)
    np.testing.assert_allclose(times, np.sort(n / xty), rtol=1e-14)
    order = np.argsort(-xty)
    for k in range(n):
        expected = np.zeros(n)
        expected[order[: k + 1]] = (y / 2.0)[order[: k + 1]]
        np.testing.assert_allclose(saddles[k], expected, atol=1e-13)


def test_diagonal_jumps_against_mirror_flow():
    # Independent: the exact mirror flow beta = alpha^2 sinh(2 s), s' = -grad L(beta), in
    # accelerated time at alpha = e^-40; jump times agree to O(1/ln(1/alpha)).
    rng = np.random.default_rng(5)
    n, d = 3, 5
    x = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    times, saddles = th.diagonal_linear_jumps(x, y)
    log_inv_alpha = 40.0

    def beta_of(z):  # z = s / ln(1/alpha); alpha^2 sinh(2 s) without overflow
        big = np.exp(2 * log_inv_alpha * (np.abs(z) - 1))
        small = np.exp(-2 * log_inv_alpha * (np.abs(z) + 1))
        return np.sign(z) * 0.5 * (big - small)

    def rhs(_, z):
        return -x.T @ (x @ beta_of(z) - y) / n

    t_end = times[-1] * 1.5 + 0.5
    mid = np.append(0.5 * (times[:-1] + times[1:]), t_end)
    sol = solve_ivp(
        rhs, (0, t_end), np.zeros(d), method="LSODA", t_eval=mid, rtol=1e-9, atol=1e-12
    )
    for k in range(len(times)):
        np.testing.assert_allclose(beta_of(sol.y[:, k]), saddles[k], atol=0.1)


# --------------------------------------------------------------------------------------------
# Boursier & Flammarion: spurious affine fit of the 3-point data


def test_boursier_spurious_fit():
    x = np.array([-0.75, -0.5, 0.125])
    y = np.array([1.1, 0.1, 0.8])
    slope, intercept, loss = th.boursier_spurious_fit(x, y)
    a = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
    b = y.mean() - a * x.mean()
    assert slope == pytest.approx(a, rel=1e-13)
    assert intercept == pytest.approx(b, rel=1e-13)
    assert loss == pytest.approx(0.5 * np.mean((y - a * x - b) ** 2), rel=1e-13)
    assert loss > 0.05  # spurious: non-zero loss although 3 points are interpolable
    # the middle point lies below the line (the theorem's configuration)
    assert y[1] < a * x[1] + b
    # multivariate input agrees with numpy lstsq
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((10, 3))
    ys = rng.standard_normal(10)
    slope, intercept, loss = th.boursier_spurious_fit(xs, ys)
    coef = np.linalg.lstsq(np.hstack([xs, np.ones((10, 1))]), ys, rcond=None)[0]
    np.testing.assert_allclose(np.append(slope, intercept), coef, rtol=1e-12)
    with pytest.raises(ValueError, match="not unique"):
        th.boursier_spurious_fit([1.0, 1.0, 1.0], [0.0, 1.0, 2.0])


# --------------------------------------------------------------------------------------------
# Hu et al.: Hermite coefficients


def test_hermite_coefficients():
    zeta, nu = th.hermite_coefficients("relu")
    assert zeta == pytest.approx(0.5, abs=1e-13)
    assert nu == pytest.approx(1 / np.sqrt(2 * np.pi), abs=1e-13)
    zeta, nu = th.hermite_coefficients("erf")
    assert zeta == pytest.approx(2 / np.sqrt(3 * np.pi), abs=1e-13)
    assert nu == pytest.approx(0.0, abs=1e-13)
    zeta, nu = th.hermite_coefficients("tanh")
    assert round(zeta, 5) == 0.60571
    assert nu == pytest.approx(0.0, abs=1e-13)
    # tanh zeta = E[1 - tanh^2] by Gauss-Hermite on the derivative (independent route)
    g, w = np.polynomial.hermite_e.hermegauss(150)
    assert zeta == pytest.approx(np.sum(w * (1 - np.tanh(g) ** 2)) / np.sqrt(2 * np.pi), abs=1e-10)
    # a callable: phi(z) = z^2 + 3z has zeta = 3, nu = 1
    zeta, nu = th.hermite_coefficients(lambda z: z**2 + 3 * z)
    assert (zeta, nu) == (pytest.approx(3.0, abs=1e-12), pytest.approx(1.0, abs=1e-12))
    with pytest.raises(ValueError, match="Unknown activation"):
        th.hermite_coefficients("gelu")
