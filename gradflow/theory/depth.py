r"""Deep linear networks: the balanced mode ODE $\dot u = L\, u^{2-2/L}(s - u)$.

A mode of a depth-$L$ linear network ($L$ weight matrices, loss $\tfrac12\|S - W_L\cdots W_1\|^2$)
with equal per-layer strengths $a$ has end-to-end strength $u = a^L$ obeying (Saxe et al. 2014,
Eq. 15; Jacot et al. 2021)

$$\dot u = L\, u^{2 - 2/L} (s - u), \qquad u(0) = u_0 = a_0^L.$$

$L = 1$ is linear regression ($\dot u = s - u$), $L = 2$ the Saxe sigmoid, and for $L \ge 3$ the
escape from a small $u_0$ takes a time polynomial in $1/a_0$ instead of logarithmic.

**How the time integral is computed.** In the logit variable $x = \ln(u/(s-u))$,

$$\frac{dt}{dx} = \frac{u^{-p}}{sL} = \frac{s^{-1-p}}{L}\,(1 + e^{-x})^{p},
\qquad p = 1 - \frac2L,$$

which is bounded as $u \to s$ (no logarithmic end-point singularity) and grows like $e^{-px}$ as
$u \to 0$. Splitting $(1 + e^{-x})^p = e^{-px} + g(x)$, the first part integrates in closed form
and carries the $a_0^{-(L-2)}$ divergence, while the remainder
$g(x) = e^{-px}\big[(1 + e^x)^p - 1\big] \approx p\, e^{2x/L}$ is smooth, bounded and decays as
$x \to -\infty$; `scipy.integrate.quad` integrates it to ~1e-13 relative even for
$u_0 = 10^{-36}$. (In $w = u^{1/L}$ this is the split
$\frac{1}{w^{L-1}(s - w^L)} = \frac{1}{s w^{L-1}} + \frac{w}{s(s - w^L)}$, but better
conditioned near $u = s$.)
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import quad
from scipy.special import expit, log_expit

from ._common import as_depth, as_float, as_positive, broadcast, check_strength
from ._common import logit as _logit
from ._common import out as _out
from .saxe import modes_loss, prepare_modes

# expit(40.0) == 1.0 in float64: beyond this logit the mode has converged to machine precision.
_X_TOP = 40.0
# 20-point Gauss-Legendre on unit segments: g is analytic within distance pi of the real axis,
# so the rule is exact to rounding (used by the vectorised inverse in `depth_mode`).
_GL_X, _GL_W = np.polynomial.legendre.leggauss(20)


def _g_scalar(x: float, p: float) -> float:
    """Smooth remainder $g(x) = (1 + e^{-x})^p - e^{-px}$, written to avoid overflow."""
    if x < 0.0:
        m = math.expm1(p * math.log1p(math.exp(x)))
        return math.exp(math.log(m) - p * x) if m > 0.0 else 0.0
    return math.exp(p * math.log1p(math.exp(-x))) - math.exp(-p * x)


def _g(x: np.ndarray, p: float) -> np.ndarray:
    """Vectorised `_g_scalar`."""
    x = np.asarray(x, dtype=np.float64)
    res = np.empty_like(x)
    neg = x < 0.0
    xn, xp = x[neg], x[~neg]
    with np.errstate(divide="ignore"):
        m = np.expm1(p * np.log1p(np.exp(xn)))
        res[neg] = np.exp(np.log(m) - p * xn)
    res[~neg] = np.exp(p * np.log1p(np.exp(-xp))) - np.exp(-p * xp)
    return res


def _head(x0: ArrayLike, x: ArrayLike, p: float) -> np.ndarray:
    r"""$\int_{x_0}^{x} e^{-py}\,dy$ without cancellation when $x \approx x_0$."""
    with np.errstate(over="ignore"):
        return -np.exp(-p * np.asarray(x0)) * np.expm1(-p * (np.asarray(x) - x0)) / p


def _logit_time(s: float, x0: float, xf: float, depth: int) -> float:
    """Time for the depth-`depth` mode to go from logit `x0` to logit `xf` (scalars)."""
    if depth == 1:  # u' = s - u: t = ln((s - u0)/(s - uf))
        return float(log_expit(-x0) - log_expit(-xf))
    if depth == 2:  # Saxe: x(t) = x0 + 2 s t
        return (xf - x0) / (2.0 * s)
    p = 1.0 - 2.0 / depth
    head = float(_head(x0, xf, p))
    if not math.isfinite(head):  # longer than the float range: honest answer is infinity
        return math.copysign(math.inf, xf - x0)
    tail, _ = quad(
        _g_scalar, x0, xf, args=(p,), epsabs=1e-15 * max(1.0, abs(head)), epsrel=1e-13, limit=500
    )
    return (head + tail) * s ** (-1.0 - p) / depth


def depth_mode_time(s: ArrayLike, u0: ArrayLike, uf: ArrayLike, depth: int) -> np.ndarray | float:
    r"""Time for a balanced depth-$L$ mode to grow from $u_0$ to $u_f$.

    $$t = \int_{u_0}^{u_f} \frac{du}{L\, u^{2-2/L}(s - u)},$$

    in closed form for $L = 1$ ($\ln\frac{s-u_0}{s-u_f}$) and $L = 2$ (identical to
    [`saxe_time`][]), by split quadrature for $L \ge 3$ (see the module docstring), accurate to
    ~1e-12 relative even for $u_0 = 10^{-36}$.

    **Arguments:**

    - `s`: singular value of the mode, $> 0$.
    - `u0`: initial end-to-end strength in $(0, s)$.
    - `uf`: final strength in $(0, s)$ (below $u_0$ gives a negative time).
    - `depth`: number of weight layers $L \ge 1$ (an integer).

    **Returns:**

    The time, broadcast over `s`, `u0`, `uf`.
    """
    depth = as_depth(depth)
    s = as_positive(s, "s")
    u0 = as_float(u0, "u0")
    uf = as_float(uf, "uf")
    check_strength(u0, s, "u0")
    check_strength(uf, s, "uf")
    s, u0, uf = broadcast(s=s, u0=u0, uf=uf)
    x0, xf = _logit(u0, s), _logit(uf, s)
    res = np.empty(s.shape)
    for i in np.ndindex(s.shape):
        res[i] = _logit_time(float(s[i]), float(x0[i]), float(xf[i]), depth)
    return _out(res)


def depth_half_time(s: ArrayLike, a0: ArrayLike, depth: int) -> np.ndarray | float:
    r"""Time for a balanced depth-$L$ mode started at $u_0 = a_0^L$ to reach $s/2$.

    The per-layer strength $a_0$ is the natural init parameter; the logit of $u_0$ is formed
    from $L \ln a_0$, so $a_0^L$ may lie below the smallest float without harm.

    **Arguments:**

    - `s`: singular value of the mode, $> 0$.
    - `a0`: initial strength of each layer along the mode, $> 0$ with $a_0^L < s$.
    - `depth`: number of weight layers $L \ge 1$.

    **Returns:**

    The half-time, broadcast over `s` and `a0`.
    """
    depth = as_depth(depth)
    s = as_positive(s, "s")
    a0 = as_positive(a0, "a0")
    s, a0 = broadcast(s=s, a0=a0)
    log_u0 = depth * np.log(a0)
    if np.any(log_u0 >= np.log(s)):
        raise ValueError(
            f"`a0` is too large: the initial mode strength a0**depth must be below `s`, got "
            f"a0={a0}, depth={depth}, s={s}; use a smaller per-layer init."
        )
    x0 = log_u0 - np.log(s - np.exp(log_u0))
    res = np.empty(s.shape)
    for i in np.ndindex(s.shape):
        res[i] = _logit_time(float(s[i]), float(x0[i]), 0.0, depth)
    return _out(res)


def _invert(t: np.ndarray, s: float, x0: float, depth: int) -> np.ndarray:
    """Logit $x(t)$ of one deep mode ($L \\ge 3$) at times `t` >= 0, by vectorised bisection.

    The time function is tabulated exactly (Gauss-Legendre on unit segments of $x$) so each
    bisection step costs one vectorised evaluation; bisection is monotone and cannot fail.
    """
    p = 1.0 - 2.0 / depth
    c = s ** (-1.0 - p) / depth
    n = max(1, math.ceil(_X_TOP - x0))
    edges = x0 + np.arange(n + 1.0)
    seg = 0.5 * _g((edges[:-1] + 0.5)[:, None] + 0.5 * _GL_X, p) @ _GL_W
    cum = np.concatenate([[0.0], np.cumsum(seg)])

    def time_of(x: np.ndarray) -> np.ndarray:
        i = np.clip(np.floor(x - x0).astype(np.int64), 0, n - 1)
        a = edges[i]
        h = 0.5 * (x - a)
        part = h * (_g((a + h)[:, None] + h[:, None] * _GL_X, p) @ _GL_W)
        return c * (_head(x0, x, p) + cum[i] + part)

    lo = np.full(t.shape, x0)
    hi = np.full(t.shape, edges[-1])
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        below = time_of(mid) < t
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
        if np.all(hi - lo <= 4.0 * np.spacing(np.maximum(np.abs(lo), np.abs(hi)))):
            break
    x = 0.5 * (lo + hi)
    return np.where(t == 0.0, x0, x)


def _depth_logit(t: np.ndarray, s: np.ndarray, u0: np.ndarray, depth: int) -> np.ndarray:
    """Logit of the mode strength at times `t` (all arrays already broadcast, `t` >= 0)."""
    if depth == 1:  # u = s - (s - u0) e^{-t}, written without cancellation
        u = u0 - (s - u0) * np.expm1(-t)
        return np.log(u) - np.log(s - u0) + t
    x0 = _logit(u0, s)
    if depth == 2:
        return x0 + 2.0 * s * t
    x = np.empty(t.shape)
    keys = np.stack([s.ravel(), x0.ravel()], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    flat_t, flat_x = t.ravel(), x.reshape(-1)
    for j, (sj, x0j) in enumerate(uniq):
        sel = inverse == j
        flat_x[sel] = _invert(flat_t[sel], float(sj), float(x0j), depth)
    return flat_x.reshape(t.shape)


def _check_times(t: np.ndarray) -> None:
    if np.any(t < 0):
        raise ValueError(f"`t` must be >= 0 (time since initialisation), got min {t.min():.6g}.")


def depth_mode(t: ArrayLike, s: ArrayLike, u0: ArrayLike, depth: int) -> np.ndarray | float:
    r"""Strength $u(t)$ of a balanced depth-$L$ mode, solving $\dot u = L u^{2-2/L}(s - u)$.

    Closed form for $L = 1$ and $L = 2$ (= [`saxe_mode`][]). For $L \ge 3$ the exact time
    function of [`depth_mode_time`][] is inverted by bisection in the logit
    $x = \ln(u/(s-u))$, which is monotone in $t$ and well conditioned on the plateau and in the
    converged tail alike. $u(0) = u_0$ exactly and $u \to s$ for large $t$.

    **Arguments:**

    - `t`: time(s) $\ge 0$.
    - `s`: singular value of the mode, $> 0$.
    - `u0`: initial end-to-end strength in $(0, s)$.
    - `depth`: number of weight layers $L \ge 1$.

    **Returns:**

    $u(t)$, broadcast over `t`, `s`, `u0`.
    """
    depth = as_depth(depth)
    t = as_float(t, "t")
    _check_times(t)
    s = as_positive(s, "s")
    u0 = as_float(u0, "u0")
    check_strength(u0, s, "u0")
    t, s, u0 = broadcast(t=t, s=s, u0=u0)
    return _out(s * expit(_depth_logit(t, s, u0, depth)))


def depth_loss(
    t: ArrayLike, s: ArrayLike, u0: ArrayLike, depth: int, residual: float = 0.0
) -> np.ndarray | float:
    r"""Loss of a decoupled, balanced depth-$L$ linear network, one mode ODE per mode.

    $$L(t) = \tfrac12 \sum_k \big(s_k - u_k(t)\big)^2 + L_{\rm res},$$

    with each $u_k$ from [`depth_mode`][] and the gap $s_k - u_k$ computed without cancellation.

    **Arguments:**

    - `t`: scalar time or array of times $\ge 0$; the result has the shape of `t`.
    - `s`: 1-D array of mode singular values $s_k > 0$.
    - `u0`: initial end-to-end strengths, a scalar or one per mode, each in $(0, s_k)$.
    - `depth`: number of weight layers $L \ge 1$.
    - `residual`: loss no linear map can explain, $\ge 0$.

    **Returns:**

    $L(t)$ with the shape of `t`.
    """
    depth = as_depth(depth)
    t, s, u0, residual = prepare_modes(t, s, u0, residual)
    _check_times(t)
    t, s, u0 = broadcast(t=t, s=s, u0=u0)
    return modes_loss(s * expit(-_depth_logit(t, s, u0, depth)), residual)
