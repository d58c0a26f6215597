r"""Escape of quadratic units from a random small init: blow-up of the linearised flow (14).

Near the origin ($M \approx 0$) the units of $f(x) = \sum_i v_i\,u_i^\top Z(x)\,u_i$ decouple
(THEORY.md §1.6, Eq. (14)). In the eigenbasis of $\Sigma_{yZ} = \sum_j \lambda_j e_j e_j^\top$
one unit obeys

$$\dot v = \sum_j \lambda_j u_j^2, \qquad \dot u_j = 2\lambda_j v\,u_j .$$

With $s(t) = \int_0^t v$, $u_j^2 = u_j(0)^2 e^{4\lambda_j s}$ and energy conservation gives
$v^2 = f(s) = v_0^2 + \tfrac12\sum_j u_j(0)^2 (e^{4\lambda_j s} - 1)$, so the time to blow up
($v \to \pm\infty$, reached at finite time because $f$ grows exponentially) is the quadrature
$t^* = \int ds/\sqrt{f(s)}$ along the path of $s$: in the direction of $\operatorname{sign} v_0$,
and, if $f$ vanishes first (a turning point $s_t$, where $v$ changes sign), back past 0 to the
other side. This is the Type-III picture of Proposition 5 for an arbitrary init: the unit with
the earliest $t^*$ reaches $O(1)$ first while the others are still $O(\varepsilon)$; the drop
of the loss then comes an $O(1)$ time before $t^* \propto 1/\varepsilon$.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import quad
from scipy.optimize import brentq

from ._common import as_float


def _blowup(v0: float, u2: np.ndarray, lam: np.ndarray) -> float:
    keep = u2 > 0  # zero weights stay zero (and 0·e^{∞} must not become nan)
    u2, lam = u2[keep], lam[keep]
    if u2.size == 0:
        return np.inf

    def f(s):
        with np.errstate(over="ignore"):
            return v0 * v0 + 0.5 * np.sum(u2 * np.expm1(4.0 * lam * s))

    def grows(d):  # f → ∞ along direction d (so v blows up there in finite time)
        return bool(np.any((u2 > 0) & (d * lam > 0)))

    def time(a, b):  # ∫ ds/√f over the interval between a and b (a, b may be ±inf)
        lo, hi = min(a, b), max(a, b)
        g = lambda s: 1.0 / np.sqrt(max(f(s), 1e-300))
        val, _ = quad(g, lo, hi, epsabs=0.0, epsrel=1e-12, limit=400)
        return val

    def slope(s):  # f'(s)
        with np.errstate(over="ignore"):
            return 2.0 * np.sum(u2 * lam * np.exp(4.0 * lam * s))

    def turning(d):
        """First zero of f from 0 along direction d, or None if f stays positive there."""
        if d * slope(0.0) >= 0:
            return None  # f is convex and increases from f(0) = v0² along d
        # bracket the minimum of the convex f along d (where d·f' changes sign)
        r = 1.0
        while d * slope(d * r) < 0 and f(d * r) > 0 and r < 1e6:
            r *= 2.0
        if f(d * r) > 0:
            if d * slope(d * r) < 0:
                return None  # decreasing to a positive limit: no turning point
            r_min = brentq(lambda x: d * slope(d * x), 0.0, r, xtol=1e-300, rtol=1e-15)
            if f(d * r_min) > 0:
                return None
            r = r_min
        return d * brentq(lambda x: f(d * x), 0.0, r, xtol=1e-300, rtol=1e-15)

    if v0 == 0:  # s = 0 is itself a turning point: leave it the way v̇(0) points
        d, s_t = -np.sign(np.sum(lam * u2)), 0.0
        if d == 0:
            return np.inf
    else:
        d = np.sign(v0)
        s_t = turning(d)
    if s_t is None:  # s runs monotonically to d·∞
        return time(0.0, d * np.inf) if grows(d) else np.inf
    if not grows(-d):  # v changes sign at s_t, then s runs back to -d·∞
        return np.inf
    # s = s_t − d w² removes the 1/√ singularity at the turning point (f ≈ c w² there); the
    # way in is w ∈ (0, √|s_t|), the way back out w ∈ (0, ∞). |f| guards rounding of s_t.
    g = lambda w: 2.0 * w / np.sqrt(max(abs(f(s_t - d * w * w)), 1e-300))
    opts = dict(epsabs=0.0, epsrel=1e-12, limit=400)
    return quad(g, 0.0, np.sqrt(abs(s_t)), **opts)[0] + quad(g, 0.0, np.inf, **opts)[0]


def quadratic_blowup_times(v0: ArrayLike, u0: ArrayLike, lam_yz: ArrayLike) -> np.ndarray:
    r"""Blow-up time of each unit under the linearised quadratic-unit flow (14).

    Exact for $\dot v = \sum_j \lambda_j u_j^2$, $\dot u_j = 2\lambda_j v u_j$ (see the module
    docstring for the quadrature). For an aligned balanced unit ($u = \sqrt2 v_0 e_1$) it is
    $1/(2\lambda_1 v_0)$, `type3_blowup_time(2 λ₁, v₀)`.

    **Arguments:**

    - `v0`: readouts $v_i(0)$, shape `(H,)`.
    - `u0`: first-layer weights $u_i(0)$ in the eigenbasis of $\Sigma_{yZ}$, shape `(H, D)`.
    - `lam_yz`: eigenvalues $\lambda_j$ of $\Sigma_{yZ}$, shape `(D,)` (both signs allowed).

    **Returns:**

    Array of shape `(H,)`: the blow-up times ($+\infty$ for a unit that never escapes, e.g.
    one with $u = 0$).
    """
    v0 = np.atleast_1d(as_float(v0, "v0"))
    u0 = np.atleast_2d(as_float(u0, "u0"))
    lam = np.atleast_1d(as_float(lam_yz, "lam_yz"))
    if v0.ndim != 1 or u0.shape != (v0.size, lam.size):
        raise ValueError(
            f"`u0` must have shape (H, D) = ({v0.size}, {lam.size}) to match `v0` {v0.shape} "
            f"and `lam_yz` {lam.shape}, got {u0.shape}."
        )
    return np.array([_blowup(float(v), u * u, lam) for v, u in zip(v0, u0)])
