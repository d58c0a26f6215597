r"""Plateau levels of the saddle-to-saddle staircase and the midpoints that define drop times.

In a linear network (Type I, THEORY §1.5) the flow visits the saddles that have learned the
top $k$ modes, $k = 0, 1, \dots, D$, in order of decreasing singular value. On the $k$-th
plateau the loss is what the unlearned modes leave behind,

$$L_k = \tfrac12 \sum_{j > k} s_j^2 + L_{\rm res},$$

and the $k$-th drop time is, by convention (VALIDATION.md), the first crossing of the midpoint
$(L_{k-1} + L_k)/2$.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_nonnegative


def plateau_levels(s: ArrayLike, residual: float = 0.0) -> np.ndarray:
    r"""Loss on each plateau of the staircase, $L_k = \tfrac12 \sum_{j>k} s_j^2 + L_{\rm res}$.

    The levels are tied to the order in which modes are learned, strongest first, so `s` must
    already be sorted in descending order (ties are fine: equal singular values are learned
    together and their intermediate levels are simply never visited as plateaus).

    **Arguments:**

    - `s`: 1-D array of singular values $s_1 \ge s_2 \ge \dots \ge s_D \ge 0$.
    - `residual`: loss no linear map can explain, $\ge 0$.

    **Returns:**

    Array of length $D + 1$: $L_0$ (loss at the origin) down to $L_D$ (= `residual`).
    """
    s = np.atleast_1d(as_nonnegative(s, "s"))
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"`s` must be a non-empty 1-D array of singular values, got {s.shape}.")
    if np.any(np.diff(s) > 0):
        raise ValueError(
            "`s` must be sorted in descending order (modes are learned strongest first); "
            f"got {s}. Pass np.sort(s)[::-1]."
        )
    residual = as_nonnegative(residual, "residual")
    if residual.ndim != 0:
        raise ValueError(f"`residual` must be a scalar, got shape {residual.shape}.")
    # tail[k] = sum_{j >= k} s_j^2 in 0-based indices = sum_{j > k} s_j^2 in 1-based ones.
    tail = np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])
    return 0.5 * tail + residual


def drop_midpoints(s: ArrayLike, residual: float = 0.0) -> np.ndarray:
    r"""Midpoints $(L_{k-1} + L_k)/2$, $k = 1..D$, between consecutive plateau levels.

    These are the loss levels whose first crossing defines the drop times (VALIDATION.md
    conventions). Midpoints are used rather than the levels themselves because a plateau is
    approached only asymptotically, while the midpoint is crossed once, at the steepest part
    of the drop.

    **Arguments:**

    - `s`: 1-D array of singular values, sorted descending.
    - `residual`: loss no linear map can explain, $\ge 0$.

    **Returns:**

    Array of length $D$.
    """
    levels = plateau_levels(s, residual)
    return 0.5 * (levels[:-1] + levels[1:])
