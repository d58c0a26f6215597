r"""In-context regression with linear attention (Zhang, Singh, Latham, Saxe 2025; THEORY §6).

Loss $L = E(y_q - \hat y_q)^2$ (**no** $\tfrac12$), time in units of $\tau$, $N$ = context length,
$D$ = token dimension, $\Lambda$ = input covariance.

- **Merged key–query** (ATTN_M, Eq. 10, $\Lambda = I$): a two-layer linear net on the cubic
  feature $z = \operatorname{vec}(\beta x_q^\top)$ with $E[zz^\top] = cI$, $c = 1 + (1 + D)/N$,
  so one Saxe sigmoid with $s = \sqrt D$, $u_0 = w_{\rm init}^2$: a single abrupt drop.
- **Separate key and query** (ATTN_S, Eqs. 19–21): saddle-to-saddle through the plateaus
  $M_0 \to M_1 \to \dots \to M_D$, one eigenvector of $\Lambda$ (largest first) per drop, each
  escape a Type-III blow-up $\tau\dot v \approx \lambda^2 v^2$.

`context_length` may be `numpy.inf` (the $N \to \infty$ limit) everywhere.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from ._common import _show, as_positive, broadcast
from ._common import out as _out
from .type3 import cubic_escape_integral


def _context(n: ArrayLike) -> np.ndarray:
    """Context length $N > 0$ as float64; `inf` is allowed (the infinite-context limit)."""
    arr = np.asarray(n)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`context_length` must be a real number or array, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if np.any(np.isnan(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"`context_length` N must be > 0 (numpy.inf for the limit), got {_show(arr)}."
        )
    return arr


def _eigenvalues(eigenvalues: ArrayLike) -> np.ndarray:
    """1-D positive eigenvalues of $\\Lambda$, sorted descending (the order they are learned)."""
    lam = np.atleast_1d(as_positive(eigenvalues, "eigenvalues"))
    if lam.ndim != 1:
        raise ValueError(
            f"`eigenvalues` must be a 1-D array (the spectrum of Lambda), got shape {lam.shape}."
        )
    return np.sort(lam)[::-1]


def _merged(
    dim: ArrayLike, context_length: ArrayLike, w_init: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated, broadcast $(D, s = \\sqrt D, c, K = s/(c\\,w_{\\rm init}^2))$."""
    d = as_positive(dim, "dim")
    n = _context(context_length)
    w = as_positive(w_init, "w_init")
    d, n, w = broadcast(dim=d, context_length=n, w_init=w)
    s = np.sqrt(d)
    c = 1.0 + (1.0 + d) / n
    return d, s, c, s / (c * w * w)  # K = s / (c u0): the sigmoid starts at c*sigma = 1/K


def _merged_logistic(
    t: ArrayLike, dim: ArrayLike, context_length: ArrayLike, w_init: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""$(c\sigma, 1 - c\sigma, D, c)$, $c\sigma = 1/(1 + (K - 1)e^{-2st})$, no cancellation."""
    t = np.asarray(t)
    if t.dtype.kind not in "biuf":
        raise TypeError(f"`t` must be a real number or array, got dtype {t.dtype}.")
    t = t.astype(np.float64)
    if not np.all(np.isfinite(t) | (t == np.inf)):
        raise ValueError(f"`t` must be finite or +inf, got {_show(t)}.")
    d, s, c, k = _merged(dim, context_length, w_init)
    t, d, s, c, k = broadcast(t=t, dim=d, s=s, c=c, k=k)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        # K > 1 (small init): logistic in x = 2st - ln(K - 1); otherwise the plain formula.
        x = 2.0 * s * t - np.log(np.where(k > 1.0, k - 1.0, 1.0))
        # e = (K - 1) exp(-2st) for K <= 1 (|K - 1| <= 1, so only t -> -inf could overflow).
        e = np.where(np.isinf(t), 0.0, (k - 1.0) * np.exp(-2.0 * s * np.where(np.isinf(t), 0, t)))
        w = np.where(k > 1.0, expit(x), 1.0 / (1.0 + e))
        gap = np.where(k > 1.0, expit(-x), e / (1.0 + e))
    return w, gap, d, c


def attention_merged_sigma(
    t: ArrayLike, dim: ArrayLike, context_length: ArrayLike, w_init: ArrayLike
) -> np.ndarray | float:
    r"""Strength $\sigma(t)$ of merged key–query attention, $\hat y_q = \sigma(t)\beta^\top x_q$.

    Eq. (10) of the ICL paper with $\Lambda = I$ and an infinitesimal aligned, balanced init:

    $$\sigma(t) = \frac{e^{2\sqrt D t/\tau}}
    {c\,(e^{2\sqrt D t/\tau} - 1) + \sqrt D/w_{\rm init}^2},
    \qquad c = 1 + \frac{1 + D}{N},$$

    the Saxe sigmoid with $s = \sqrt D$, $u_0 = w_{\rm init}^2$, rising from
    $w_{\rm init}^2/\sqrt D$ to $\sigma_\infty = 1/c$. Evaluated in logistic form (no overflow
    for large $t$; `t = inf` gives $1/c$).

    **Arguments:**

    - `t`: time in units of $\tau$ (`inf` allowed).
    - `dim`: token dimension $D > 0$.
    - `context_length`: context length $N > 0$ (`inf` allowed).
    - `w_init`: initial $\ell_2$ norm of each layer, $> 0$.

    **Returns:**

    $\sigma(t)$, broadcast over the arguments.
    """
    w, _, _, c = _merged_logistic(t, dim, context_length, w_init)
    return _out(w / c)


def attention_merged_loss(
    t: ArrayLike, dim: ArrayLike, context_length: ArrayLike, w_init: ArrayLike
) -> np.ndarray | float:
    r"""In-context loss $E(y_q - \hat y_q)^2$ of merged key–query attention, $\Lambda = I$.

    $$L = D - 2\sigma D + \sigma^2 c D
    = D\left[\frac{(1 - c\sigma)^2}{c} + 1 - \frac1c\right],
    \qquad L(\infty) = \frac{D(1 + D)}{N + 1 + D},$$

    evaluated in the second form with $1 - c\sigma$ computed directly, so the converged tail
    keeps full relative precision. Arguments as in [`attention_merged_sigma`][].

    **Returns:**

    $L(t)$, broadcast over the arguments.
    """
    _, gap, d, c = _merged_logistic(t, dim, context_length, w_init)
    return _out(d * (gap * gap / c + (1.0 - 1.0 / c)))


def attention_merged_half_time(
    dim: ArrayLike, context_length: ArrayLike, w_init: ArrayLike
) -> np.ndarray | float:
    r"""Half-rise time of merged key–query attention, $\sigma(t_{1/2}) = \sigma_\infty/2$.

    $$t_{1/2} = \frac{\tau}{2\sqrt D}\ln\!\left(\frac{\sqrt D}{c\, w_{\rm init}^2} - 1\right)
    \approx \frac{\tau}{\sqrt D}\ln\frac{1}{w_{\rm init}}.$$

    **Arguments:** as in [`attention_merged_sigma`][] (without `t`); the init must start below
    half strength, $w_{\rm init}^2 < \sqrt D/(2c)$.

    **Returns:**

    $t_{1/2}/\tau$, broadcast over the arguments.
    """
    _, s, _, k = _merged(dim, context_length, w_init)
    if np.any(k <= 2.0):
        raise ValueError(
            f"`w_init` is too large: the strength starts at or above half its final value "
            f"(need w_init**2 < sqrt(D)/(2c)), got w_init={_show(np.asarray(w_init))}."
        )
    return _out(np.log(k - 1.0) / (2.0 * s))


def _saturation(lam: np.ndarray, trace: np.ndarray, n: np.ndarray) -> np.ndarray:
    """$1 + (1 + \\operatorname{tr}\\Lambda/\\lambda)/N$, the finite-context correction."""
    return 1.0 + (1.0 + trace / lam) / n


def attention_plateau_losses(eigenvalues: ArrayLike, context_length: ArrayLike) -> np.ndarray:
    r"""Plateau losses of separate key–query attention, Eq. (19) of the ICL paper.

    $$L(M_m) = \operatorname{tr}\Lambda - \sum_{d=1}^{m}
    \frac{\lambda_d}{1 + (1 + \operatorname{tr}\Lambda/\lambda_d)/N}, \qquad m = 0, \dots, D,$$

    with the eigenvalues in descending order (the order the flow learns them);
    $\to \sum_{d>m}\lambda_d$ as $N \to \infty$. $L(M_D)$ is the converged loss.

    **Arguments:**

    - `eigenvalues`: 1-D array of the eigenvalues $\lambda_d > 0$ of $\Lambda$ (any order).
    - `context_length`: scalar context length $N > 0$ (`numpy.inf` for the limit).

    **Returns:**

    Array of the $D + 1$ levels $L(M_0), \dots, L(M_D)$, decreasing.
    """
    lam = _eigenvalues(eigenvalues)
    n = _context(context_length)
    if n.ndim != 0:
        raise ValueError(f"`context_length` must be a scalar, got shape {n.shape}.")
    trace = lam.sum()
    gains = lam / _saturation(lam, trace, n)
    return np.concatenate([[trace], trace - np.cumsum(gains)])


def attention_plateau_weights(eigenvalues: ArrayLike, context_length: ArrayLike) -> np.ndarray:
    r"""Size $v_i = \|k_i\| = \|q_i\|$ of a learned head on the plateaus, Eq. (20).

    $$v_i = \lambda_i^{-1/3}\,\big(1 + (1 + \operatorname{tr}\Lambda/\lambda_i)/N\big)^{-1/3},$$

    the fixed point of the escape ODE (21) (see [`attention_escape_time`][]).

    **Arguments:** as in [`attention_plateau_losses`][].

    **Returns:**

    Array of the $D$ sizes, in descending order of the eigenvalues.
    """
    lam = _eigenvalues(eigenvalues)
    n = _context(context_length)
    if n.ndim != 0:
        raise ValueError(f"`context_length` must be a scalar, got shape {n.shape}.")
    return np.cbrt(1.0 / (lam * _saturation(lam, lam.sum(), n)))


def attention_escape_time(
    lam: ArrayLike,
    trace: ArrayLike,
    context_length: ArrayLike,
    v0: ArrayLike,
    v_end: ArrayLike | None = None,
) -> np.ndarray | float:
    r"""Time for the escaping head of separate key–query attention to grow to $v_{\rm end}$.

    Eq. (21): $\tau \dot v = \lambda^2 v^2 - \lambda^3 a v^5$,
    $a = 1 + (1 + \operatorname{tr}\Lambda/\lambda)/N$, with fixed point
    $v^* = (\lambda a)^{-1/3}$ (Eq. 20). The separable integral

    $$\frac{t}{\tau} = \frac{1}{\lambda^2}\int_{v_0}^{v_{\rm end}}\frac{dv}{v^2(1 - \lambda a v^3)}
    = \frac{1}{\lambda^2}\left(\frac{1}{v_0} - \frac{1}{v_{\rm end}}\right) + \text{smooth part}$$

    is evaluated in closed form (see `gradflow.theory.type3`): the leading Type-III term
    $1/(\lambda^2 v_0)$ analytically, the remainder without cancellation.

    **Arguments:**

    - `lam`: eigenvalue $\lambda > 0$ being learned.
    - `trace`: $\operatorname{tr}\Lambda > 0$.
    - `context_length`: $N > 0$ (`inf` allowed).
    - `v0`: initial head size, $0 < v_0 < v^*$.
    - `v_end`: final head size in $(0, v^*)$; default $v^*/2$.

    **Returns:**

    $t/\tau$, broadcast over the arguments.
    """
    lam = as_positive(lam, "lam")
    trace = as_positive(trace, "trace")
    n = _context(context_length)
    v0 = as_positive(v0, "v0")
    lam, trace, n, v0 = broadcast(lam=lam, trace=trace, context_length=n, v0=v0)
    a = lam * _saturation(lam, trace, n)
    if v_end is None:
        v1 = 0.5 * np.cbrt(1.0 / a)
    else:
        v1 = as_positive(v_end, "v_end")
    a, v0, v1, lam = broadcast(a=a, v0=v0, v_end=v1, lam=lam)
    return _out(cubic_escape_integral(a, v0, v1) / lam**2)
