r"""Leading-order escape-time laws from the saddle at the origin (Jacot et al. 2021, THEORY §3).

These are the asymptotic scalings behind the exact times of [`depth_half_time`][] and
[`expected_half_times`][], for plotting laws against measured plateau lengths:

- depth $L = 2$: $t_1 \approx \frac{1}{2s}\ln\frac{s}{a_0^2}$, **logarithmic** in the init;
- depth $L \ge 3$: $t_1 \approx \frac{a_0^{-(L-2)}}{(L-2)\,s}$, **polynomial** in $1/a_0$;
- width picture at $L = 2$ with per-entry std $w^{-\gamma/2}$: the plateau grows like
  $(\gamma - 1)\ln w$ for $\gamma > 1$ and vanishes for $\gamma < 1$ (lazy regime).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_depth, as_float, as_positive, broadcast
from ._common import out as _out


def escape_time_law(s: ArrayLike, a0: ArrayLike, depth: int) -> np.ndarray | float:
    r"""Leading-order escape time of a balanced depth-$L$ mode from per-layer strength $a_0$.

    From $\dot u = L u^{2-2/L}(s - u)$ with $u_0 = a_0^L$, dropping the $O(1)$ time spent
    near $u = s$:

    $$t \approx \begin{cases} \dfrac{1}{2s}\ln\dfrac{s}{a_0^2} & L = 2,\\[1ex]
    \dfrac{a_0^{-(L-2)}}{(L-2)\,s} & L \ge 3. \end{cases}$$

    Depth 1 (linear regression) has no saddle at the origin and is refused.

    **Arguments:**

    - `s`: singular value of the mode, $> 0$.
    - `a0`: initial strength of each layer, $> 0$ (the law is meaningful for $a_0 \ll 1$).
    - `depth`: number of weight layers $L \ge 2$.

    **Returns:**

    The time, broadcast over `s` and `a0` (may overflow to `inf` for tiny $a_0$ at large $L$).
    """
    depth = as_depth(depth, minimum=2)
    s = as_positive(s, "s")
    a0 = as_positive(a0, "a0")
    s, a0 = broadcast(s=s, a0=a0)
    if depth == 2:
        return _out((np.log(s) - 2.0 * np.log(a0)) / (2.0 * s))
    with np.errstate(over="ignore"):
        return _out(np.exp(-(depth - 2) * np.log(a0)) / ((depth - 2) * s))


def width_gamma_escape_time(
    s1: ArrayLike, width: ArrayLike, gamma: ArrayLike
) -> np.ndarray | float:
    r"""Escape time of a width-$w$ two-layer linear net with per-entry std $w^{-\gamma/2}$.

    The expected initial strength is $u_0 \approx w \cdot w^{-\gamma}/2 = w^{1-\gamma}/2$, so

    $$t_1 \approx \frac{(\gamma - 1)\ln w + \ln(2 s_1)}{2 s_1}:$$

    the transition at $\gamma = 1$ of Jacot et al. A negative value means the init is already
    past the saddle (no plateau; the formula no longer describes the dynamics).

    **Arguments:**

    - `s1`: top singular value, $> 0$.
    - `width`: hidden width $w > 0$.
    - `gamma`: variance exponent $\gamma$ (variance $w^{-\gamma}$).

    **Returns:**

    The time, broadcast over the arguments.
    """
    s1 = as_positive(s1, "s1")
    w = as_positive(width, "width")
    gamma = as_float(gamma, "gamma")
    s1, w, gamma = broadcast(s1=s1, width=w, gamma=gamma)
    return _out(((gamma - 1.0) * np.log(w) + np.log(2.0 * s1)) / (2.0 * s1))
