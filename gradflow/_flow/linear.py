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
($h\max|\lambda| <$ `Auto.linear_exit`) and no longer growing, and never comes back ($J_0$ is
stale from then on).

**When it is used** (`Auto.linear_start`): at most `Auto.linear_max` parameters (the `eigh`
is $O(P^3)$: ~1 ms at $P = 128$), and only if the field is linear at the init's scale:
the second difference $|F(2\theta_0) + F(0) - 2F(\theta_0)|_\infty \le$
`Auto.linear_defect` $\cdot |F(\theta_0)|_\infty$ (two gradients). With a cubic remainder the
defect grows as $|\theta|^2$, so at the default $10^{-8}$ linearity holds while the weights
grow ≥ 100×, which is when the `eigh` pays for itself (~20 Tsit5 steps at $P = 128$). At
$\sigma = 10^{-3}$ (defect 2e-5) it is off; Type III nets and deeper linear nets, whose
field is quadratic at the origin, never qualify; linear regression always does.

Dense output on a linear step is the exact exponential solution at 11 Chebyshev nodes of
the step, interpolated by a polynomial of degree 10 (a cubic Hermite on a step that grows
$e^{4}$-fold is ~1% off); steps are kept to $h\max|\lambda| \le 4$, where that polynomial is
within 1.5e-8. Tsit5 and stiff steps then use the same degree-10 form, padded, of their
usual cubic Hermite, so that saving needs no branch per save point: see `Interpolation`.

`gf.solve_flow` compiles the start in only if the largest initial |θ| is at most
`Auto.linear_below` (1e-4): a linear model from a larger init (linear regression at init
1e-3) needs `gf.Auto(linear_below=math.inf)` to use it.
"""

from __future__ import annotations

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .exprb import dense_eig, phi

#: Degree of the dense output's polynomial (`Interpolation`).
DEGREE = 10
#: Longest linear step, as h·max|λ|: the dense output's polynomial, interpolating the exact
#: solution at Chebyshev nodes, is then within 1.5e-8 of $e^{h\lambda s}$.
H_RHO_MAX = 4.0

_NODES = np.cos(np.arange(DEGREE + 1) * np.pi / DEGREE)  # Chebyshev–Lobatto in u = 2s − 1


def _values_to_monomials() -> np.ndarray:
    """(DEGREE+1)² matrix: the coefficients in s ∈ [0, 1] (highest power first, as for
    `jnp.polyval`) of the polynomial through given values at the nodes s_j = (1 + u_j)/2.
    (Via the Chebyshev series; the coefficients reach ~1e6, which costs ~1e-10 relative.)"""
    n, j = DEGREE, np.arange(DEGREE + 1)
    w = np.where((j == 0) | (j == n), 0.5, 1.0)
    to_cheb = (2.0 / n) * w[None, :] * np.cos(np.outer(j, j) * np.pi / n)
    to_cheb[0] /= 2.0
    to_cheb[n] /= 2.0
    out = np.zeros((n + 1, n + 1))
    u_of_s = np.polynomial.Polynomial([-1.0, 2.0])
    for col in range(n + 1):
        in_u = np.polynomial.chebyshev.cheb2poly(to_cheb[:, col])
        in_s = np.polynomial.Polynomial(in_u)(u_of_s).coef
        out[:, col] = np.pad(in_s, (0, n + 1 - in_s.size))[::-1]
    return out


_V2M = _values_to_monomials()


def _rescale(t0, t, t1):
    """(t − t0)/(t1 − t0), 0 if t0 == t1 (as diffrax's Hermite interpolation)."""
    same = t0 == t1
    return jnp.where(same, 0, t - t0) / jnp.where(same, 1, t1 - t0)


def hermite_coeffs(y0, y1, k0, k1):
    """The cubic Hermite of a step (end values, end slopes × h): diffrax's own coefficients,
    padded with zero leading ones to `DEGREE`, so that `jnp.polyval` gives it bit for bit.
    Leaves of shape (DEGREE + 1, *y.shape)."""
    cubic = dfx.ThirdOrderHermitePolynomialInterpolation(
        t0=0.0, t1=1.0, y0=y0, y1=y1, k0=k0, k1=k1
    ).coeffs

    def pad(c):
        return jnp.concatenate([jnp.zeros((DEGREE - 3,) + c.shape[1:], c.dtype), c])

    return jax.tree.map(pad, cubic)


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
    """One exponential Euler step on the frozen $J_0$: `(y1, f1, err, coeffs)`.

    `tol(y0, y1)`: the controller's per-component tolerance; a step longer than `H_RHO_MAX`
    (as h·max|λ|) is charged (hρ/H_RHO_MAX)³ of it, so the controller settles below that
    length, where the dense output (`coeffs`: the polynomial of degree `DEGREE` through the
    exact solution at Chebyshev nodes) is accurate.
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
    # the polynomial of the increment, whose value at s = 0 is y0 exactly
    coeffs = jnp.asarray(_V2M, flat.dtype) @ prod[:-1]
    coeffs = coeffs.at[-1].set(flat)
    return y1, f1, unravel(err_flat), jax.vmap(unravel)(coeffs)


class Interpolation(dfx.AbstractLocalInterpolation):
    """Dense output of `Auto`: the polynomial `coeffs` (`jnp.polyval` form, degree
    `DEGREE`) of each step, if `Auto` may take linear-start steps: on Tsit5 and stiff steps
    the cubic Hermite of the step's end slopes, bit for bit as diffrax's, on a linear-start
    step the exact exponential solution interpolated at Chebyshev nodes. Otherwise the
    plain cubic Hermite."""

    t0: jax.Array
    t1: jax.Array
    coeffs: object
    hermite: dfx.ThirdOrderHermitePolynomialInterpolation | None

    def __init__(self, *, t0, t1, y0=None, y1=None, k0=None, k1=None, coeffs=None):
        self.t0, self.t1 = t0, t1
        self.coeffs = coeffs
        self.hermite = None
        if coeffs is None:
            self.hermite = dfx.ThirdOrderHermitePolynomialInterpolation(
                t0=t0, t1=t1, y0=y0, y1=y1, k0=k0, k1=k1
            )

    def evaluate(self, t0, t1=None, left: bool = True):
        del left
        if t1 is not None:
            return self.evaluate(t1) - self.evaluate(t0)
        if self.hermite is not None:
            return self.hermite.evaluate(t0)
        s = _rescale(self.t0, t0, self.t1)

        def _eval(c):
            with jax.numpy_dtype_promotion("standard"):
                return jnp.polyval(c, s)

        return jax.tree.map(_eval, self.coeffs)
