r"""Pesme & Flammarion (2023): the saddle-to-saddle limit of diagonal linear networks (THEORY §8).

For $\beta = u \odot v$, $u(0) = \sqrt2\alpha\mathbf 1$, $v(0) = 0$ and
$L(\beta) = \frac{1}{2n}\|X\beta - y\|^2$, the flow in accelerated time
$\tilde t = t/\ln(1/\alpha)$ converges as $\alpha \to 0$ to a piecewise-constant path: $\beta$
sits at a saddle $\beta_k$ for $\tilde t \in (\tilde t_k, \tilde t_{k+1})$ and jumps in between.
The saddles and jump times come from a LARS-like recursion on the mirror variable
$S = s/\ln(1/\alpha) \in [-1, 1]^d$, $s(t) = -\int_0^t \nabla L$; the last saddle is the
minimum-$\ell_1$ interpolator (the minimum-$\ell_1$ least-squares solution if $n > d$).
Convergence in $\alpha$ is slow: jump-time errors are of relative order $1/\ln(1/\alpha)$.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import lsq_linear

from ._common import as_float


def _sign_constrained_lstsq(x: np.ndarray, y: np.ndarray, sign: np.ndarray) -> np.ndarray:
    r"""$\arg\min \|X\beta - y\|$ with $\beta_i = 0$ where `sign == 0`, else `sign * beta >= 0`."""
    beta = np.zeros(x.shape[1])
    act = sign != 0
    if np.any(act):
        lb = np.where(sign[act] > 0, 0.0, -np.inf)
        ub = np.where(sign[act] > 0, np.inf, 0.0)
        res = lsq_linear(x[:, act], y, bounds=(lb, ub), method="bvls", tol=1e-14)
        beta[act] = np.clip(res.x, lb, ub)
    return beta


def diagonal_linear_jumps(
    x: ArrayLike, y: ArrayLike, *, tol: float = 1e-9, max_jumps: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Jump times and saddles of a diagonal linear network at vanishing init.

    The limiting algorithm of Pesme & Flammarion. Start at $\tilde t = 0$, $\beta = 0$, $S = 0$;
    while $g = \nabla L(\beta) = \frac1n X^\top(X\beta - y) \ne 0$:

    1. for every coordinate with $g_i \ne 0$ that is not pinned against the boundary it is
       pushed towards, the time for $S_i$ to reach $\pm1$ is $\Delta_i = (1 - S_i)/(-g_i)$ if
       $g_i < 0$, $(S_i + 1)/g_i$ if $g_i > 0$; let $\Delta = \min_i \Delta_i$;
    2. $\tilde t \leftarrow \tilde t + \Delta$, $S \leftarrow S - \Delta g$;
    3. $\beta \leftarrow \arg\min L$ subject to $\beta_i = 0$ if $|S_i| < 1$,
       $\beta_i \ge 0$ if $S_i = 1$, $\beta_i \le 0$ if $S_i = -1$ (bounded-variable least
       squares, `scipy.optimize.lsq_linear(method="bvls")`).

    By the KKT conditions active coordinates then have $g_i = 0$, and a boundary coordinate held
    at 0 has $g_i$ pointing inward, so it leaves the boundary (deactivation). The first jump is
    at $\tilde t_1 = 1/\|\nabla L(0)\|_\infty = n/\|X^\top y\|_\infty$.

    **Arguments:**

    - `x`: design matrix of shape `(n, d)` (rows are samples).
    - `y`: targets of shape `(n,)`.
    - `tol`: a gradient entry below `tol` times $\|X^\top y\|_\infty/n$ counts as zero, and
      $|S_i|$ within `tol` of 1 counts as on the boundary.
    - `max_jumps`: safety cap on the number of jumps (default $10(n + d)$).

    **Returns:**

    A tuple `(times, saddles)`: `times[k]` is the $k$-th jump time $\tilde t_{k+1}$ in units of
    $t/\ln(1/\alpha)$ (shape `(K,)`), and `saddles[k]` the saddle $\beta$ reached at that jump
    (shape `(K, d)`); `saddles[-1]` is the final (minimum-$\ell_1$) solution.
    """
    x = as_float(x, "x")
    y = as_float(y, "y")
    if x.ndim != 2:
        raise ValueError(f"`x` must be a design matrix of shape (n, d), got shape {x.shape}.")
    if y.shape != (x.shape[0],):
        raise ValueError(f"`y` must have shape ({x.shape[0]},) to match `x`, got {y.shape}.")
    n, d = x.shape
    scale = np.max(np.abs(x.T @ y)) / n
    if scale == 0.0:
        raise ValueError(
            "`x.T @ y` is zero: the origin is already stationary, nothing is learned."
        )
    max_jumps = 10 * (n + d) if max_jumps is None else int(max_jumps)
    t = 0.0
    s = np.zeros(d)
    beta = np.zeros(d)
    times, saddles = [], []
    for _ in range(max_jumps):
        g = x.T @ (x @ beta - y) / n
        g[np.abs(g) <= tol * scale] = 0.0
        pinned = ((s >= 1.0) & (g < 0)) | ((s <= -1.0) & (g > 0))
        free = (g != 0.0) & ~pinned
        if not np.any(free):
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.where(g < 0, (1.0 - s) / -g, (s + 1.0) / g)
        delta = np.where(free, delta, np.inf)
        i = int(np.argmin(delta))
        t += delta[i]
        s = np.clip(s - delta[i] * np.where(free, g, 0.0), -1.0, 1.0)
        s[i] = -np.sign(g[i])
        s[np.abs(s) >= 1.0 - tol] = np.sign(s[np.abs(s) >= 1.0 - tol])
        sign = np.where(np.abs(s) == 1.0, s, 0.0)
        beta = _sign_constrained_lstsq(x, y, sign)
        times.append(t)
        saddles.append(beta)
    else:
        raise RuntimeError(
            f"diagonal_linear_jumps did not terminate after {max_jumps} jumps; pass a larger "
            f"`max_jumps` or a larger `tol` if the problem is degenerate."
        )
    return np.asarray(times), np.asarray(saddles).reshape(len(saddles), d)
