r"""Zhang, Saxe & Latham (2026), Theorem 4: how far units stay from the learned subspace.

THEORY §1.5. From an i.i.d. $N(0, \varepsilon^2)$ init of a two-layer net linear in its units,
when the top-$r$ modes of $\Sigma_{yz}$ (singular value $s_1$, multiplicity $r$) reach $O(1)$,

$$\|(I - P)\theta_i\| = O\big(\varepsilon^{1 - s_{r+1}/s_1}\big),$$

because the component along mode $r + 1$ grew like $e^{s_{r+1}t}$ during the
$t \approx \ln(1/\varepsilon)/s_1$ it took the top modes to grow.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_modes


def theorem4_exponent(s: ArrayLike, rank: int = 1) -> float:
    r"""The power $1 - s_{r+1}/s_1$ of the init scale in Theorem 4's misalignment bound.

    **Arguments:**

    - `s`: singular values of $\Sigma_{yz}$, any order (sorted here), all $> 0$.
    - `rank`: $r$, the multiplicity of the top singular value (the learned subspace).

    **Returns:** the exponent; 1 when $r$ covers every mode (nothing left to grow, the rest
    stays $O(\varepsilon)$).
    """
    s = np.sort(as_modes(s))[::-1]
    if (
        isinstance(rank, bool)
        or not isinstance(rank, (int, np.integer))
        or not 1 <= rank <= s.size
    ):
        raise ValueError(f"`rank` must be an integer in [1, {s.size}], got {rank!r}.")
    if rank == s.size:
        return 1.0
    return float(1.0 - s[rank] / s[0])
