r"""Hu, Xiao, Adlam, Pennington (2020): Hermite coefficients of the early-time linear model.

THEORY §5.

Early in training from a large (NTK-scaled) init, a two-layer network behaves like a linear
model on $[x/\sqrt d;\ 1]$ weighted by $\zeta = E[\varphi'(g)]$ and $\nu = E[\varphi(g)]$,
$g \sim N(0, 1)$: $K_{\rm lin}(x, x') \approx \zeta^2 x^\top x'/d + \nu^2$ per trained layer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.integrate import quad
from scipy.special import erf

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda z: np.maximum(z, 0.0),
    "erf": erf,
    "tanh": np.tanh,
}
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _gauss_mean(f: Callable[[float], float]) -> float:
    """$E[f(g)]$, $g \\sim N(0, 1)$, adaptive quadrature per half-line (a kink at 0 is exact)."""
    opts = dict(epsabs=1e-14, epsrel=1e-13, limit=200)
    dens = lambda z: float(f(z)) * np.exp(-0.5 * z * z) * _INV_SQRT_2PI  # noqa: E731
    return quad(dens, -np.inf, 0.0, **opts)[0] + quad(dens, 0.0, np.inf, **opts)[0]


def hermite_coefficients(activation: str | Callable) -> tuple[float, float]:
    r"""Hermite coefficients $(\zeta, \nu) = (E[\varphi'(g)], E[\varphi(g)])$, $g \sim N(0,1)$.

    $\zeta$ is computed through Stein's identity $E[\varphi'(g)] = E[g\,\varphi(g)]$, so only
    $\varphi$ is needed (no derivative, valid for kinked activations). Both expectations are
    integrated adaptively on $(-\infty, 0]$ and $[0, \infty)$ separately, so a kink at 0 (ReLU,
    leaky ReLU, $|z|$) costs no accuracy; results are accurate to ~1e-13 for activations of at
    most polynomial growth. Known values: ReLU $(1/2, 1/\sqrt{2\pi})$, erf $(2/\sqrt{3\pi}, 0)$,
    tanh $(0.60571, 0)$.

    **Arguments:**

    - `activation`: `"relu"`, `"erf"`, `"tanh"`, or a callable $\varphi$ acting on floats.

    **Returns:**

    `(zeta, nu)` as floats.
    """
    if isinstance(activation, str):
        try:
            phi = _ACTIVATIONS[activation.lower()]
        except KeyError:
            raise ValueError(
                f"Unknown activation {activation!r}; use one of {sorted(_ACTIVATIONS)} or pass "
                f"a callable."
            ) from None
    elif callable(activation):
        phi = activation
    else:
        raise TypeError(f"`activation` must be a name or a callable, got {type(activation)}.")
    zeta = _gauss_mean(lambda z: z * phi(z))
    nu = _gauss_mean(phi)
    return float(zeta), float(nu)
