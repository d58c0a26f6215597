r"""Power-law teacher spectra $s_k \propto k^{-a}$ (THEORY §1.7).

The exponent sets the gaps between consecutive singular values and hence the plateau
lengths: smaller $a$ means smaller gaps and shorter plateaus, and $a = 0$ (all equal) leaves
only the initial plateau.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._common import as_nonnegative, as_positive


def power_law_spectrum(n: int, exponent: float, scale: float = 1.0) -> np.ndarray:
    r"""Singular values $s_k = c\, k^{-a}$ for $k = 1, \dots, n$.

    **Arguments:**

    - `n`: number of modes, an integer $\ge 1$.
    - `exponent`: $a \ge 0$; the result is then sorted descending, as
      [`plateau_levels`][] expects.
    - `scale`: $c = s_1 > 0$.

    **Returns:**

    float64 array of shape `(n,)`.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"`n` (number of modes) must be an integer >= 1, got {n!r}.")
    a = as_nonnegative(exponent, "exponent")
    c = as_positive(scale, "scale")
    if a.ndim != 0 or c.ndim != 0:
        raise ValueError("`exponent` and `scale` must be scalars.")
    k = np.arange(1, n + 1, dtype=np.float64)
    return c * k ** (-a)
