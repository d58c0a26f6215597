r"""Half-times and drop times of a two-layer linear network from a small random init.

The exact sigmoid of [`saxe_mode`][] assumes a balanced, decoupled init. From i.i.d.
$\mathcal N(0, \varepsilon^2)$ weights the modes are neither, but in the linear phase
$\dot W_1 \approx W_2^\top S$, $\dot W_2 \approx S W_1^\top$, so in the basis of the teacher
$\Sigma_{yx} = U S V^\top$ the combination $W_2^\top q_k + W_1 r_k$ grows like $e^{s_k t}$
while $W_2^\top q_k - W_1 r_k$ decays. After a transient the mode strength is
$u_k \approx u_{0,k} e^{2 s_k t}$ with the **effective initial strength**

$$u_{0,k} = \tfrac14 \|W_2(0)^\top q_k + W_1(0) r_k\|^2,$$

and the sigmoid started at $u_{0,k}$ predicts the half-time (THEORY §1.9, §2): to ~4 digits for
the top mode, within 0.5-3 % for later modes, which feel the others.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float, as_modes, as_positive, broadcast
from ._common import out as _out
from .saxe import saxe_half_time, saxe_time


def _basis(m: ArrayLike | None, rows: int, k: int, name: str, weight: str) -> np.ndarray:
    """Teacher singular vectors as a `(rows, k)` matrix; identity columns by default."""
    if m is None:
        if k > rows:
            raise ValueError(
                f"`{name}` was not given, so its default is the first {k} identity columns, but "
                f"`{weight}` only has dimension {rows}; pass `{name}` explicitly."
            )
        return np.eye(rows, k)
    m = as_float(m, name)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[0] != rows:
        raise ValueError(
            f"`{name}` must have shape ({rows}, K), one teacher singular vector per column, to "
            f"match `{weight}`; got shape {m.shape}."
        )
    return m


def random_init_u0(
    w1: ArrayLike, w2: ArrayLike, u: ArrayLike | None = None, v: ArrayLike | None = None
) -> np.ndarray:
    r"""Effective initial strength of each mode, $u_{0,k} = \tfrac14\|W_2^\top q_k + W_1 r_k\|^2$.

    The factor $\tfrac14$ makes this exact for a balanced decoupled init: $W_1 = W_2 = a_0 I$
    gives $u_{0,k} = a_0^2$.

    **Arguments:**

    - `w1`: first-layer weights at $t = 0$, shape $(H, D_{\rm in})$.
    - `w2`: second-layer weights at $t = 0$, shape $(D_{\rm out}, H)$.
    - `u`: left singular vectors $q_k$ of $\Sigma_{yx} = U S V^\top$ as columns, shape
      $(D_{\rm out}, K)$. Default: identity columns (diagonal teacher).
    - `v`: right singular vectors $r_k$ as columns, shape $(D_{\rm in}, K)$. Default: identity
      columns.

    Without `u` and `v`, $K = \min(D_{\rm in}, D_{\rm out})$; otherwise $K$ is their number of
    columns.

    **Returns:**

    Array of shape $(K,)$.
    """
    w1 = as_float(w1, "w1")
    w2 = as_float(w2, "w2")
    if w1.ndim != 2:
        raise ValueError(f"`w1` must be a matrix of shape (H, D_in), got shape {w1.shape}.")
    if w2.ndim != 2:
        raise ValueError(f"`w2` must be a matrix of shape (D_out, H), got shape {w2.shape}.")
    if w2.shape[1] != w1.shape[0]:
        raise ValueError(
            f"Hidden widths disagree: `w1` {w1.shape} has H = {w1.shape[0]} rows but `w2` "
            f"{w2.shape} has {w2.shape[1]} columns; the product W2 @ W1 must be defined."
        )
    d_in, d_out = w1.shape[1], w2.shape[0]
    if u is None and v is None:
        k = min(d_in, d_out)
    else:
        given = np.asarray(u if u is not None else v)
        k = 1 if given.ndim == 1 else given.shape[-1]
    u = _basis(u, d_out, k, "u", "w2")
    v = _basis(v, d_in, k, "v", "w1")
    if u.shape[1] != v.shape[1]:
        raise ValueError(
            f"`u` {u.shape} and `v` {v.shape} must have the same number of columns (modes)."
        )
    a = w2.T @ u + w1 @ v  # (H, K): column k is W2^T q_k + W1 r_k
    return 0.25 * np.sum(a**2, axis=0)


def _modes_u0(s, w1, w2, u, v) -> tuple[np.ndarray, np.ndarray]:
    """Validated `(s, u0)` for the random-init predictions, one entry per mode."""
    u0 = random_init_u0(w1, w2, u, v)
    s = as_modes(s)
    if s.shape not in ((1,), u0.shape):
        raise ValueError(
            f"`s` must have one singular value per mode: the weights give {u0.size} modes but "
            f"`s` has shape {s.shape}."
        )
    s = np.broadcast_to(s, u0.shape)
    bad = (u0 <= 0) | (u0 >= s)
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"The init gives mode {k} (0-based) an effective strength u0 = {u0[k]:.6g}, outside "
            f"(0, s) with s = {s[k]:.6g}: the small-init sigmoid does not apply. Use a smaller "
            "init scale, or a non-zero one."
        )
    return s, u0


def random_init_half_times(
    s: ArrayLike,
    w1: ArrayLike,
    w2: ArrayLike,
    u: ArrayLike | None = None,
    v: ArrayLike | None = None,
) -> np.ndarray:
    r"""Predicted half-time of each mode from a random init, $\frac{1}{2s_k}\ln(s_k/u_{0,k} - 1)$.

    The half-time (first time $q_k^\top W_2 W_1 r_k = s_k/2$) of the Saxe sigmoid started at
    the effective strength $u_{0,k}$ of [`random_init_u0`][]. Modes grow independently from
    $t = 0$, so these times are not cumulative.

    **Arguments:**

    - `s`: singular values $s_k$, one per mode (same order as the columns of `u`, `v`).
    - `w1`, `w2`, `u`, `v`: as in [`random_init_u0`][].

    **Returns:**

    Array of shape $(K,)$.
    """
    s, u0 = _modes_u0(s, w1, w2, u, v)
    return np.asarray(saxe_half_time(s, u0))


def drop_times_random_init(
    s: ArrayLike,
    w1: ArrayLike,
    w2: ArrayLike,
    u: ArrayLike | None = None,
    v: ArrayLike | None = None,
) -> np.ndarray:
    r"""Predicted drop time of each mode: when it crosses its loss midpoint.

    Mode $k$ contributes $\tfrac12(s_k - u_k)^2$ to the loss, so halfway (in loss) between the
    plateaus before and after it means $u_k = (1 - 1/\sqrt2)\, s_k$. This is the k-th drop time
    of VALIDATION.md when the modes are well separated (the other modes then sit at 0 or at
    $s_j$). It precedes the half-time by $\ln(1+\sqrt2)/(2s_k) = 0.8814/(2s_k)$, computed here
    exactly with [`saxe_time`][].

    **Arguments:**

    - `s`: singular values $s_k$, one per mode.
    - `w1`, `w2`, `u`, `v`: as in [`random_init_u0`][].

    **Returns:**

    Array of shape $(K,)$ (negative for a mode that starts past its midpoint).
    """
    s, u0 = _modes_u0(s, w1, w2, u, v)
    return np.asarray(saxe_time(s, u0, (1.0 - 1.0 / np.sqrt(2.0)) * s))


def expected_half_times(
    s: ArrayLike, width: ArrayLike, init_scale: ArrayLike
) -> np.ndarray | float:
    r"""Half-times at the expected initial strength, $\frac{1}{2s}\ln\frac{2s}{H\varepsilon^2}$.

    For i.i.d. $\mathcal N(0, \varepsilon^2)$ weights $E\,u_{0,k} = H\varepsilon^2/2$; inserting
    it into $\frac{1}{2s}\ln(s/u_0)$ (the $-1$ is negligible at small init) gives

    $$t_k \approx \frac{1}{s_k}\ln\frac1\varepsilon + \frac{1}{2 s_k}\ln\frac{2 s_k}{H}:$$

    logarithmic in the init scale, with width entering only through $\ln H$.

    **Arguments:**

    - `s`: singular value(s) $> 0$.
    - `width`: hidden width $H > 0$.
    - `init_scale`: per-entry standard deviation $\varepsilon > 0$.

    **Returns:**

    The times, broadcast over the arguments.
    """
    s = as_positive(s, "s")
    h = as_positive(width, "width")
    eps = as_positive(init_scale, "init_scale")
    s, h, eps = broadcast(s=s, width=h, init_scale=eps)
    # Sum of logarithms: no underflow of eps**2 for tiny init scales.
    return _out((np.log(2.0 * s) - np.log(h) - 2.0 * np.log(eps)) / (2.0 * s))
