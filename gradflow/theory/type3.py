r"""Type-III (zero-unit) escape: power-law plateaus of quadratic units (THEORY §1.6, V5).

A unit whose output is quadratic (or of degree $p$) in its weights leaves the saddle at the
origin like $\dot v = \lambda v^p$, which blows up at a finite time $\propto v_0^{-(p-1)}$: the
plateau is a power of the init scale, not its logarithm as for linear (Type-I) units.

For the quadratic network $f(x) = \sum_i v_i (u_i^\top x)^2$ with $x \sim N(0, I)$ and teacher
$y = x^\top T x$, one balanced unit aligned with the top eigenvector $e_1$ of
$\Sigma_{yZ} = \operatorname{tr}(T) I + 2T$ (eigenvalue $\lambda_1$) keeps $u = \sqrt2 v e_1$, so
$M = 2v^3 e_1 e_1^\top$, the population loss is the parabola
$L(m) = L_0 - \lambda_1 m + \tfrac32 m^2$ in $m = 2v^3$, and the flow reduces exactly to

$$\dot v = 2v^2(\lambda_1 - 6 v^3).$$

**How the time integral is computed.** Both this ODE and the attention ODE (21) of the ICL
paper have the form $\dot v = k\, v^2 (1 - a v^3)$, whose time integral is elementary:

$$\int \frac{dv}{v^2(1 - a v^3)} = -\frac1v + a^{1/3} F(a^{1/3} v),\quad
F(w) = \tfrac13\Big[-\ln(1 - w) + \tfrac12\ln(1 + w + w^2)
- \sqrt3 \arctan\tfrac{2w + 1}{\sqrt3}\Big],$$

the $1/v$ term carrying the $1/v_0$ divergence and $F$ smooth for $0 \le w < 1$. It is
evaluated with `log1p` so that $F(w) = w^2/2 + O(w^5)$ keeps full precision for tiny $w$.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import _show, as_positive, broadcast
from ._common import out as _out

_SQRT3 = np.sqrt(3.0)


def _f(w: np.ndarray) -> np.ndarray:
    """$F(w) - F(0)$ for $0 \\le w < 1$ (see the module docstring)."""
    atan = np.arctan((2.0 * w + 1.0) / _SQRT3) - np.pi / 6.0
    return (-np.log1p(-w) + 0.5 * np.log1p(w + w * w) - _SQRT3 * atan) / 3.0


def cubic_escape_integral(a: np.ndarray, v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    r"""$\int_{v_0}^{v_1} dv / (v^2 (1 - a v^3))$; requires $0 < v_0, v_1 < a^{-1/3}$ (checked)."""
    c = np.cbrt(a)
    for name, v in (("start", v0), ("end", v1)):
        bad = c * v >= 1.0
        if np.any(bad):
            raise ValueError(
                f"The {name} value of the escaping weight must lie below its fixed point "
                f"{_show(1.0 / c[bad])}, got {_show(v[bad])}; the ODE never reaches or "
                f"crosses the fixed point, so choose a smaller value."
            )
    return (1.0 / v0 - 1.0 / v1) + c * (_f(c * v1) - _f(c * v0))


def quadratic_unit_escape_time(
    v0: ArrayLike, lam_yz: ArrayLike = 5.0, cubic: ArrayLike = 6.0
) -> np.ndarray | float:
    r"""Time for an aligned, balanced quadratic unit to cross the midpoint of its loss drop.

    The unit obeys $\dot v = 2v^2(\lambda_1 - c\, v^3)$ with $m = 2v^3$ and loss
    $L(m) = L_0 - \lambda_1 m + \tfrac{c}{4} m^2$ (for the Gaussian-input quadratic teacher
    $c = 6$ always; $\lambda_1$ is the top eigenvalue of
    $\Sigma_{yZ} = \operatorname{tr}(T)I + 2T$).
    It converges to the width-1 saddle $m^* = 2\lambda_1/c$, $L^* = L_0 - \lambda_1^2/c$, and the
    loss crosses the midpoint $(L_0 + L^*)/2$ at $m_c = m^*(1 - 1/\sqrt2)$, reached at

    $$t = \frac{1}{2\lambda_1}\int_{v_0}^{v_c} \frac{dv}{v^2 (1 - (c/\lambda_1) v^3)}
    \approx \frac{1}{2\lambda_1 v_0} + O(1).$$

    The defaults are VALIDATION V5 ($T = \operatorname{diag}(2, -1)$: $\lambda_1 = 5$, $L_0 = 5.5$,
    $L^* = 4/3$, midpoint $41/12$ at $m_c = 0.488155$), giving $t = 9.86680$ for $v_0 = 10^{-2}$.

    **Arguments:**

    - `v0`: initial readout weight $v_0 > 0$ (first-layer weight $u_1(0) = \sqrt2 v_0$), below
      the crossing value $v_c = (m_c/2)^{1/3}$.
    - `lam_yz`: eigenvalue $\lambda_1 > 0$ of $\Sigma_{yZ}$ along the unit's direction.
    - `cubic`: saturation coefficient $c > 0$ of the reduced ODE (6 for Gaussian inputs).

    **Returns:**

    The crossing time (gradient-flow units), broadcast over the arguments.
    """
    v0 = as_positive(v0, "v0")
    lam = as_positive(lam_yz, "lam_yz")
    c = as_positive(cubic, "cubic")
    v0, lam, c = broadcast(v0=v0, lam_yz=lam, cubic=c)
    vc = np.cbrt(lam / c * (1.0 - 1.0 / np.sqrt(2.0)))
    bad = v0 >= vc
    if np.any(bad):
        raise ValueError(
            f"`v0` must be below the midpoint-crossing value v_c = {_show(vc[bad])}, got "
            f"{_show(v0[bad])}; the loss is already past the midpoint of the drop."
        )
    return _out(cubic_escape_integral(c / lam, v0, vc) / (2.0 * lam))


def type3_blowup_time(lam: ArrayLike, v0: ArrayLike, degree: ArrayLike = 2) -> np.ndarray | float:
    r"""Leading-order escape time of a degree-$p$ unit, $\dot v = \lambda v^p$ (blow-up time).

    $$v(t) = \big(v_0^{1-p} - (p-1)\lambda t\big)^{-1/(p-1)}, \qquad
    t_{\rm blow} = \frac{1}{(p - 1)\,\lambda\, v_0^{p-1}}:$$

    a plateau $\propto \varepsilon^{-(p-1)}$, power law in the init (Proposition 5). For the
    aligned quadratic unit of V5, $\dot v \approx 2\lambda_1 v^2$, so pass `lam = 2 * lam_yz`.

    **Arguments:**

    - `lam`: growth rate $\lambda > 0$.
    - `v0`: initial size $v_0 > 0$.
    - `degree`: the power $p > 1$ (2 for quadratic units, 3 for cubic ones).

    **Returns:**

    The blow-up time, broadcast over the arguments.
    """
    lam = as_positive(lam, "lam")
    v0 = as_positive(v0, "v0")
    p = as_positive(degree, "degree")
    if np.any(p <= 1):
        raise ValueError(
            f"`degree` must be > 1 (a degree-1 unit grows exponentially, never blows up), "
            f"got {_show(p)}."
        )
    lam, v0, p = broadcast(lam=lam, v0=v0, degree=p)
    return _out(1.0 / ((p - 1.0) * lam * np.exp((p - 1.0) * np.log(v0))))
