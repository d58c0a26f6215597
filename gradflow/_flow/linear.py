r"""Linear start: the first plateau of a tiny initialisation in a few exact exponential steps.

From an init of scale $\sigma$ around a saddle at the origin (deep linear depth 2, ReLU nets,
linear regression), the flow is linear until the weights have grown by orders of magnitude:
$F(\theta) = -\nabla L(\theta) = J_0\theta + O(|\theta|^3)$. An explicit Runge–Kutta method
resolves that growth $e^{\lambda t}$ at a fixed fraction of an e-fold per step, so its cost
grows with $\log(1/\sigma)$: on the 2-layer linear benchmark net (128 parameters) Tsit5 took
~90 of its 338 steps at $\sigma = 10^{-12}$ to grow the weights from $10^{-12}$ to $10^{-3}$.
An exponential method on the Jacobian at the init, $J_0 = V\operatorname{diag}(\lambda)V^\top$
(one dense Hessian and one `eigh`), integrates that stretch exactly:

$$\theta_{n+1} = \theta_n + h\,\varphi_1(hJ_0)\,F(\theta_n)$$

(exponential Euler with the frozen $J_0$; exact while $F$ is linear, first order otherwise).
Its error is the integral of the defect $D(\theta) = F(\theta) - F(\theta_n) -
J_0(\theta - \theta_n)$ over the step, which we estimate from the defect at the step end,
$D_1$, as

$$e \approx h\,\varphi_1(-h\lambda_+)\,D_1, \qquad \lambda_+ = \max(\lambda_{max}, 0):$$

a remainder of degree $\geq 2$ in the growing weights grows at least as $e^{2\lambda_+ t}$,
so its weighted integral $\int_0^h e^{(h-s)J_0}D(s)\,ds$ is at most this (the plain
$h\,\varphi_2(hJ_0)D_1$ of ETD2 assumes a defect linear in time and overestimates a growing
one by $e^{h\lambda}$). Steps grow tenfold per step while the flow is linear, then shrink as
the nonlinearity sets in; `Auto` hands over to Tsit5 once they are short
($h\lambda_+ <$ `Auto.linear_exit`) and no longer growing, and never comes back ($J_0$ is
stale from then on).

**When it is used** (`Auto.linear_start`): at most `Auto.linear_max` parameters (the `eigh`
is $O(P^3)$: ~1 ms at $P = 128$), and only if the field is linear at the init's scale:
the second difference $|F(2\theta_0) + F(0) - 2F(\theta_0)|_\infty \le$
`Auto.linear_defect` $\cdot |F(\theta_0)|_\infty$ (two gradients). With a cubic remainder the
defect grows as $|\theta|^2$, so at the default $10^{-8}$ linearity holds while the weights
grow ≥ 100×, which is when the `eigh` pays for itself (~20 Tsit5 steps at $P = 128$). At
$\sigma = 10^{-3}$ (defect 2e-5) it is off; Type III nets and deeper linear nets, whose
field is quadratic at the origin, never qualify; linear regression always does.

Dense output on a linear step is the same exponential formula at the intermediate time (a
cubic Hermite on a step that grows $e^{25}$-fold would be useless): see `Interpolation`.
"""

from __future__ import annotations

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .exprb import dense_eig, phi

#: Degree of the dense output's Chebyshev series (`Interpolation`).
DEGREE = 10
#: Longest linear step, as h·max|λ|: the series is then within 1.5e-8 of $e^{h\lambda s}$.
H_RHO_MAX = 4.0

_NODES = np.cos(np.arange(DEGREE + 1) * np.pi / DEGREE)  # Chebyshev–Lobatto, u_0 = 1


def _values_to_series() -> np.ndarray:
    """(DEGREE+1)² matrix: Chebyshev coefficients from the values at `_NODES`."""
    n, j = DEGREE, np.arange(DEGREE + 1)
    w = np.where((j == 0) | (j == n), 0.5, 1.0)
    out = (2.0 / n) * w[None, :] * np.cos(np.outer(j, j) * np.pi / n)
    out[0] /= 2.0
    out[n] /= 2.0
    return out


def _cubic_to_series() -> np.ndarray:
    """(DEGREE+1) × 4 matrix: Chebyshev coefficients (in u = 2s − 1) of a s³ + b s² + c s + d."""
    out = np.zeros((DEGREE + 1, 4))
    for col, power in enumerate((3, 2, 1, 0)):
        mono = np.zeros(power + 1)
        mono[power] = 1.0
        # s = (u + 1)/2: compose, then convert the power series in u to Chebyshev
        in_u = np.polynomial.polynomial.polypow([0.5, 0.5], power)
        out[: power + 1, col] = np.polynomial.chebyshev.poly2cheb(in_u)
    return out


_V2S = _values_to_series()
_C2S = _cubic_to_series()


def hermite_series(y0, y1, k0, k1):
    """The cubic Hermite of a step (end values, end slopes × h) as a Chebyshev series:
    leaves of shape (DEGREE + 1, *y.shape)."""

    def leaf(a0, a1, b0, b1):
        cubic = jnp.stack([b0 + b1 + 2 * a0 - 2 * a1, -2 * b0 - b1 - 3 * a0 + 3 * a1, b0, a0])
        return jnp.tensordot(jnp.asarray(_C2S, cubic.dtype), cubic, axes=1)

    return jax.tree.map(leaf, y0, y1, k0, k1)


def defect(vf_flat, y0, f0) -> jax.Array:
    r"""$|F(2y_0) + F(0) - 2F(y_0)|_\infty / |F(y_0)|_\infty$ (`inf` if $F(y_0) = 0$ or the
    result is not finite): how far from linear the field is at the scale of `y0`."""
    second = vf_flat(2.0 * y0) + vf_flat(jnp.zeros_like(y0)) - 2.0 * f0
    num, den = jnp.max(jnp.abs(second)), jnp.max(jnp.abs(f0))
    out = num / jnp.where(den > 0, den, 1.0)
    return jnp.where((den > 0) & jnp.isfinite(out), out, jnp.inf)


def start(terms, t0, y0, args, f0, max_defect: float):
    """`(vecs, lam, on)`: the eigendecomposition of the Jacobian at `y0` if the field is linear
    there to `max_defect` and has a non-zero spectrum (else zeros), and whether it is."""
    flat, unravel = ravel_pytree(y0)
    vf_flat = lambda z: ravel_pytree(terms.vf(t0, unravel(z), args))[0]
    size, dtype = flat.size, flat.dtype
    linear = defect(vf_flat, flat, ravel_pytree(f0)[0]) <= max_defect

    def eig(_):
        return dense_eig(terms, t0, y0, args)

    def skip(_):
        return jnp.zeros((size, size), dtype), jnp.zeros((size,), dtype)

    vecs, lam = jax.lax.cond(linear, eig, skip, None)
    on = linear & (jnp.max(jnp.abs(lam)) > 0)
    return vecs, lam, on


def step(terms, t0, t1, y0, args, f0, vecs, lam, tol):
    """One exponential Euler step on the frozen $J_0$: `(y1, f1, err, series)`.

    `tol(y0, y1)`: the controller's per-component tolerance; a step longer than `H_RHO_MAX`
    (as h·max|λ|) is charged (hρ/H_RHO_MAX)³ of it, so the controller settles below that
    length, where the dense output (`series`, Chebyshev of degree `DEGREE` from the exact
    values at its nodes) is accurate.
    """
    flat, unravel = ravel_pytree(y0)
    f0_flat = ravel_pytree(f0)[0]
    h = t1 - t0
    zf = f0_flat @ vecs  # Vᵀf (`vecs.T @ f` materialises the transpose on CPU)
    tau = h * (1.0 + jnp.asarray(_NODES, flat.dtype)) / 2.0  # node times, τ = h at node 0
    cols = tau[:, None] * phi(tau[:, None] * lam[None, :], 1)[1] * zf[None, :]
    # one product for all: the nodes, and J₀(y1 − y0) = V (e^{hλ} − 1) Vᵀf
    cols = jnp.concatenate([cols, (jnp.exp(jnp.minimum(h * lam, 700.0)) - 1.0)[None] * zf], 0)
    prod = cols @ vecs.T  # (nodes + 1, P): row j is V·cols[j]
    values = flat[None, :] + prod[:-1]
    y1_flat = values[0]
    y1 = unravel(y1_flat)
    f1 = terms.vf(t1, y1, args)
    d1 = ravel_pytree(f1)[0] - f0_flat - prod[-1]
    lam_plus = jnp.maximum(jnp.max(lam), 0.0)
    weight = h * phi(-h * lam_plus, 1)[1]
    cap = (jnp.abs(h) * jnp.max(jnp.abs(lam)) / H_RHO_MAX) ** 3
    err_flat = jnp.abs(weight * d1) + cap * ravel_pytree(tol(y0, y1))[0]
    series = jnp.asarray(_V2S, flat.dtype) @ values
    return y1, f1, unravel(err_flat), jax.vmap(unravel)(series)


class Interpolation(dfx.AbstractLocalInterpolation):
    """Dense output of `Auto`: a Chebyshev series on the step (`series`, from `Auto` with a
    linear start: the Hermite cubic of the step's end slopes, or on a linear-start step the
    exponential solution at the series' nodes), or the plain cubic Hermite."""

    t0: jax.Array
    t1: jax.Array
    y0: object
    y1: object
    series: object
    hermite: dfx.ThirdOrderHermitePolynomialInterpolation | None

    def __init__(self, *, t0, t1, y0, y1, k0=None, k1=None, series=None):
        self.t0, self.t1, self.y0, self.y1 = t0, t1, y0, y1
        self.series = series
        self.hermite = None
        if series is None:
            self.hermite = dfx.ThirdOrderHermitePolynomialInterpolation(
                t0=t0, t1=t1, y0=y0, y1=y1, k0=k0, k1=k1
            )

    def evaluate(self, t0, t1=None, left: bool = True):
        del left
        if t1 is not None:
            return self.evaluate(t1) - self.evaluate(t0)
        if self.hermite is not None:
            return self.hermite.evaluate(t0)
        dt = self.t1 - self.t0
        u = 2.0 * (t0 - self.t0) / jnp.where(dt == 0, 1.0, dt) - 1.0

        def clenshaw(c, a, b):
            b1, b2 = jnp.zeros_like(c[0]), jnp.zeros_like(c[0])
            for k in range(DEGREE, 0, -1):
                b1, b2 = c[k] + 2.0 * u * b1 - b2, b1
            val = c[0] + u * b1 - b2
            # the step's ends exactly (as the Hermite's Horner form gives them: a save at t0
            # returns the initial parameters bit for bit); the correction carries no
            # derivative, so that event root finding (Newton, from the step end) still sees
            # the series' slope
            fix = jnp.where(t0 == self.t0, a - val, jnp.where(t0 == self.t1, b - val, 0.0))
            return val + jax.lax.stop_gradient(fix)

        return jax.tree.map(clenshaw, self.series, self.y0, self.y1)
