r"""Boursier & Flammarion (2025): the spurious affine fit after early alignment (THEORY §4).

On the 3-point data with positive labels and the middle point below the best line, every large
ReLU neuron of a small-init two-layer network aligns with a direction active on **all** points,
so the network is affine on the data and gradient flow converges to the affine least-squares fit
(non-zero loss), although zero loss is reachable by a wider set of kinks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float


def boursier_spurious_fit(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray | float, float, float]:
    r"""Affine least-squares fit $\hat y = a^\top x + b$ and its loss: the small-init limit point.

    $$(a, b) = \arg\min \frac{1}{2n}\sum_k (y_k - a^\top x_k - b)^2, \qquad
    L = \frac{1}{2n}\sum_k (y_k - a^\top x_k - b)^2,$$

    the loss in gradflow's half-mean-squared convention (the authors' `MSELoss` value is $2L$).
    For 1-D inputs $a = \operatorname{cov}(x, y)/\operatorname{var}(x)$,
    $b = \bar y - a\bar x$. On x = (−0.75, −0.5, 0.125), y = (1.1, 0.1, 0.8) this is the spurious
    stationary point of THEORY §4.

    **Arguments:**

    - `x`: inputs, shape `(n,)` (scalar inputs) or `(n, d)`; no constant column (the intercept
      is the hidden bias).
    - `y`: scalar targets, shape `(n,)`.

    **Returns:**

    `(slope, intercept, loss)`: `slope` a float for 1-D `x`, else an array of shape `(d,)`.
    """
    x = as_float(x, "x")
    y = as_float(y, "y")
    scalar = x.ndim == 1
    xx = x[:, None] if scalar else x
    if xx.ndim != 2 or y.shape != (xx.shape[0],):
        raise ValueError(
            f"`x` must have shape (n,) or (n, d) and `y` shape (n,), got {x.shape} and {y.shape}."
        )
    design = np.hstack([xx, np.ones((xx.shape[0], 1))])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ValueError(
            "The affine fit is not unique: the inputs are constant along some direction "
            "(need at least d + 1 affinely independent points)."
        )
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    loss = 0.5 * np.mean((design @ coef - y) ** 2)
    slope = float(coef[0]) if scalar else coef[:-1]
    return slope, float(coef[-1]), float(loss)
