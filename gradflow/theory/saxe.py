r"""Saxe, McClelland & Ganguli (2014): the exact sigmoid of one balanced two-layer mode.

With whitened inputs, loss $\tfrac12\|S - W_2 W_1\|_F^2$ and a balanced, decoupled init, each
singular mode of strength $u = a b$ obeys $\dot u = 2u(s - u)$ (time in units of $\tau = 1$), so

$$u(t) = \frac{s\, e^{2st}}{e^{2st} - 1 + s/u_0}.$$

Everything here is written in the logit variable $x = \ln(u/(s - u))$, in which the solution is
the straight line $x(t) = x_0 + 2st$. This is what keeps the formulas finite for $u_0 = 10^{-30}$
and $t = 10^4$, where the textbook form overflows ($e^{2st}$) or cancels ($s - u$).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from ._common import as_float, as_modes, as_nonnegative, as_positive, broadcast, check_strength
from ._common import logit as _logit
from ._common import out as _out


def _saxe_logit(t: ArrayLike, s: ArrayLike, u0: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated, broadcast $(x(t), s)$ with $x$ the logit of the mode strength."""
    t = as_float(t, "t")
    s = as_positive(s, "s")
    u0 = as_float(u0, "u0")
    check_strength(u0, s, "u0")
    t, s, u0 = broadcast(t=t, s=s, u0=u0)
    return _logit(u0, s) + 2.0 * s * t, s


def saxe_mode(t: ArrayLike, s: ArrayLike, u0: ArrayLike) -> np.ndarray | float:
    r"""Strength of one balanced two-layer mode at time $t$ (Saxe et al. 2014, Eq. 10).

    $$u(t) = \frac{s}{1 + (s/u_0 - 1)\, e^{-2st}} = s\,\operatorname{expit}(x_0 + 2st),
    \qquad x_0 = \ln\frac{u_0}{s - u_0}.$$

    The logistic form never overflows: $u \to s$ for large $t$ and $u(0) = u_0$ exactly even for
    $u_0 = 10^{-30}$. Negative $t$ is allowed (the flow run backwards).

    **Arguments:**

    - `t`: time(s), gradient-flow units ($\tau = 1$).
    - `s`: singular value of the mode, $> 0$.
    - `u0`: initial strength $u_0 = a_0 b_0 \in (0, s)$.

    All three broadcast against each other.

    **Returns:**

    $u(t)$ with the broadcast shape (a float for scalar input).
    """
    x, s = _saxe_logit(t, s, u0)
    return _out(s * expit(x))


def saxe_time(s: ArrayLike, u0: ArrayLike, uf: ArrayLike) -> np.ndarray | float:
    r"""Time for a balanced two-layer mode to grow from $u_0$ to $u_f$.

    $$t = \frac{1}{2s} \ln\frac{u_f (s - u_0)}{u_0 (s - u_f)},$$

    the inverse of [`saxe_mode`][]; negative if $u_f < u_0$.

    **Arguments:**

    - `s`: singular value of the mode, $> 0$.
    - `u0`: initial strength in $(0, s)$.
    - `uf`: final strength in $(0, s)$.

    **Returns:**

    The time, broadcast over the arguments.
    """
    s = as_positive(s, "s")
    u0 = as_float(u0, "u0")
    uf = as_float(uf, "uf")
    check_strength(u0, s, "u0")
    check_strength(uf, s, "uf")
    s, u0, uf = broadcast(s=s, u0=u0, uf=uf)
    return _out((_logit(uf, s) - _logit(u0, s)) / (2.0 * s))


def saxe_half_time(s: ArrayLike, u0: ArrayLike) -> np.ndarray | float:
    r"""Time for a balanced two-layer mode to reach half its final strength, $u = s/2$.

    $$t_{1/2} = \frac{1}{2s} \ln\!\left(\frac{s}{u_0} - 1\right)
    \approx \frac{1}{2s}\ln\frac{s}{u_0}:$$

    logarithmic in the initial strength, and inversely proportional to $s$, which is why
    stronger modes are learned first.

    **Arguments:**

    - `s`: singular value of the mode, $> 0$.
    - `u0`: initial strength in $(0, s)$.

    **Returns:**

    The half-time, broadcast over the arguments.
    """
    s = as_positive(s, "s")
    u0 = as_float(u0, "u0")
    check_strength(u0, s, "u0")
    s, u0 = broadcast(s=s, u0=u0)
    return _out(-_logit(u0, s) / (2.0 * s))


def modes_loss(gap: np.ndarray, residual: np.ndarray) -> np.ndarray | float:
    r"""$\tfrac12 \sum_k g_k^2 + L_{\rm res}$ over the last axis of the gaps $g_k = s_k - u_k$."""
    return _out(0.5 * np.sum(gap**2, axis=-1) + residual)


def prepare_modes(
    t: ArrayLike, s: ArrayLike, u0: ArrayLike, residual: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shared validation of the `*_loss` functions: returns `(t[..., None], s, u0, residual)`."""
    s = as_modes(s)
    u0 = as_float(u0, "u0")
    try:
        u0 = np.broadcast_to(u0, s.shape)
    except ValueError:
        raise ValueError(
            f"`u0` must be a scalar or have one entry per mode like `s` {s.shape}, "
            f"got shape {u0.shape}."
        ) from None
    check_strength(u0, s, "u0")
    t = as_float(t, "t")
    residual = as_nonnegative(residual, "residual")
    if residual.ndim != 0:
        raise ValueError(f"`residual` must be a scalar, got shape {residual.shape}.")
    return t[..., None], s, u0, residual


def saxe_loss(
    t: ArrayLike, s: ArrayLike, u0: ArrayLike, residual: float = 0.0
) -> np.ndarray | float:
    r"""Loss of a decoupled, balanced two-layer linear network, one sigmoid per mode.

    $$L(t) = \tfrac12 \sum_k \big(s_k - u_k(t)\big)^2 + L_{\rm res}.$$

    The gap $s_k - u_k = s_k\,\operatorname{expit}(-x_k)$ is computed directly (no
    cancellation), so the loss stays accurate to full relative precision deep in the converged
    tail, where it is plotted on a log scale.

    **Arguments:**

    - `t`: scalar time or array of times; the result has the shape of `t`.
    - `s`: 1-D array of mode singular values $s_k > 0$.
    - `u0`: initial strengths, a scalar or one per mode, each in $(0, s_k)$.
    - `residual`: loss no linear map can explain, $\tfrac12(E\|y\|^2 - \sum_j s_j^2) \ge 0$.

    **Returns:**

    $L(t)$ with the shape of `t`.
    """
    t, s, u0, residual = prepare_modes(t, s, u0, residual)
    x = _logit(u0, s) + 2.0 * s * t
    return modes_loss(s * expit(-x), residual)
