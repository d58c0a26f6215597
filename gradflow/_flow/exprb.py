r"""An exponential Rosenbrock solver (exprb43) on the dense, symmetric Hessian.

Gradient flow $\dot\theta = F(\theta) = -\nabla L(\theta)$ has the Jacobian
$J = -\nabla^2 L$: real and symmetric, so one `eigh` gives $J = V \operatorname{diag}(\lambda)
V^\top$ and every matrix function of $hJ$ is a diagonal one in that basis. An exponential
Rosenbrock method integrates the linearisation exactly,

$$\theta(t_n + h) \approx \theta_n + h\,\varphi_1(hJ)\,F(\theta_n)
+ \text{(nonlinear corrections)},$$

which is what small-init gradient flow needs on its two expensive kinds of stretch:

1. stiff directions (curvature $\lambda_{max}$ of the directions already learned) are damped
   exactly, with no step-size limit $h < c/\lambda_{max}$;
2. a saddle's unstable directions grow exactly like $e^{h|\lambda|}$, so a long, nearly
   linear escape from a tiny init is a few steps, not $\propto \lambda T$ of them.

The steps are then limited only by the nonlinearity, at fourth order. The method is
Hochbruck, Ostermann & Schweitzer's `exprb43` (SIAM J. Numer. Anal. 47, 2009), with
$D_i = F(U_i) - F(\theta_n) - J(U_i - \theta_n)$:

$$U_2 = \theta_n + \tfrac h2\varphi_1(\tfrac h2 J)F_n,\quad
U_3 = \theta_n + h\varphi_1(hJ)(F_n + D_2),$$
$$\theta_{n+1} = \theta_n + h\varphi_1(hJ)F_n + h(16\varphi_3 - 48\varphi_4)(hJ)D_2
+ h(-2\varphi_3 + 12\varphi_4)(hJ)D_3,$$

and its embedded third-order solution (the $\varphi_4$ terms dropped) for the error estimate.

**A fresh Hessian every step.** A dense Hessian ($P$ Hessian-vector products, batched) and
its `eigh` ($O(P^3)$: ~13 µs at $P = 12$, ~1.2 ms at $P = 128$, ~2.5 ms at $P = 192$ on one CPU
core) cost far more than a gradient, so reusing it across steps is tempting. We measured it:
with a Hessian kept for 5 steps, exprb43 is only second order (the Rosenbrock order
conditions assume $J = F'(\theta_n)$), its embedded estimate no longer bounds the error, and
drop times went from 3e-8 to 9e-3 relative error on the Type III benchmark case (3-layer
linear: 6e-5 to 1.4e-3). A conservative estimate that sees the staleness (exprb43's own) made
the steps redo with a fresh Hessian almost every time. So every step uses the Hessian at its
own start; `Auto` uses this method only for small parameter counts (`Auto.dense_max`), where
that is cheap, and beyond it `RosW` (a W-method, whose order survives a reused Hessian) or RKC
(no linear algebra).

Cost per step: 3 gradients (FSAL: the slope at the step end starts the next step), one dense
Hessian, one `eigh` and a few $P \times P$ matrix-vector products.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .rkc import fsal_slope, power_iteration, random_unit
from .traced import traced_once

#: |z| below this uses the Taylor series of φ_k (the recurrence loses digits near 0).
_SERIES_BELOW = 1.0
_SERIES_TERMS = 20
#: hλ is clipped here: e^700 is near float64's limit; such a step has a huge error anyway.
_Z_MAX = 700.0


def phi(z: jax.Array, kmax: int = 4) -> list[jax.Array]:
    r"""$[\varphi_0(z), \dots, \varphi_{k_{max}}(z)]$ elementwise, with $\varphi_0 = e^z$ and
    $\varphi_{k+1}(z) = (\varphi_k(z) - 1/k!)/z$, $\varphi_k(0) = 1/k!$.

    Near 0 (|z| < 1) each $\varphi_k$ is its Taylor series $\sum_j z^j/(j+k)!$ (20 terms:
    the tail is below $10^{-18}$); elsewhere the recurrence, which is stable for |z| ≥ 1.
    """
    z = jnp.minimum(z, _Z_MAX)
    small = jnp.abs(z) < _SERIES_BELOW
    zs = jnp.where(small, z, 0.0)
    zb = jnp.where(small, 1.0, z)
    out = []
    big = jnp.exp(zb)
    for k in range(kmax + 1):
        # Horner for Σ_j zs^j / (j+k)!
        ser = jnp.full_like(zs, 1.0 / math.factorial(_SERIES_TERMS + k))
        for j in range(_SERIES_TERMS - 1, -1, -1):
            ser = ser * zs + 1.0 / math.factorial(j + k)
        if k > 0:
            big = (big - 1.0 / math.factorial(k - 1)) / zb
        out.append(jnp.where(small, ser, big))
    return out


def dense_eig(terms, t, y, args):
    """(V, λ) with J = V diag(λ) Vᵀ, J the symmetrised Jacobian of the field at `y` (a dense
    Hessian from P batched Hessian-vector products, then `eigh`)."""
    flat, unravel = ravel_pytree(y)
    f = lambda z: ravel_pytree(terms.vf(t, unravel(z), args))[0]
    jac = jax.jacfwd(f)(flat)
    lam, vecs = jnp.linalg.eigh(0.5 * (jac + jac.T))
    return vecs, lam


class ExpRB(dfx.AbstractAdaptiveSolver):
    r"""Exponential Rosenbrock method `exprb43` (order 4, embedded order 3) on the dense
    eigendecomposition of the Hessian at the start of each step (see the module docstring).

    **Arguments:**

    - `power_iters`: power iterations per spectral-radius refresh when `Auto` runs its
      explicit mode (default 3).
    - `init_power_iters`: power iterations at the start (default 20).
    - `explicit_below`: `Auto` switches back to Tsit5 when $h\rho$ is below this (default
      1.0: Tsit5 is stable up to $h\rho \approx 3.5$, so such a step is accuracy-limited,
      where Tsit5's fifth order does better at no linear algebra).

    Works on any pytree of float arrays (raveled to one vector inside the step). Counts in
    its state: `num_vf` gradients, `num_jvp` Hessian-vector products ($P$ per Hessian),
    `num_hessians`.
    """

    power_iters: int = 3
    init_power_iters: int = 20
    explicit_below: float = 1.0

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., dfx.ThirdOrderHermitePolynomialInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation
    )

    def order(self, terms):
        return 4

    def error_order(self, terms):
        return 4

    # -- the Hessian -----------------------------------------------------------------------

    def _eig(self, terms, t, y, args):
        return dense_eig(terms, t, y, args)

    # -- one exprb43 step in the eigenbasis ------------------------------------------------

    def _exprb43(self, vf_flat, y, f0, vecs, lam, h):
        dot = lambda v: v @ vecs  # Vᵀv (`vecs.T @ v` materialises the transpose on CPU)
        back = lambda c: vecs @ c
        z = h * lam
        p1h = phi(0.5 * z, 1)[1]
        _, p1, _, p3, p4 = phi(z, 4)
        a = dot(f0)
        c2 = 0.5 * h * p1h * a  # Vᵀ(U2 − y)
        u2 = y + back(c2)
        d2 = dot(vf_flat(u2)) - a - lam * c2
        c3 = h * p1 * (a + d2)  # Vᵀ(U3 − y)
        u3 = y + back(c3)
        d3 = dot(vf_flat(u3)) - a - lam * c3
        b2, b3 = 16.0 * p3 - 48.0 * p4, -2.0 * p3 + 12.0 * p4
        y1 = y + back(h * (p1 * a + b2 * d2 + b3 * d3))
        # the embedded third-order solution drops the φ4 terms
        err = back(h * p4 * (12.0 * d3 - 48.0 * d2))
        return y1, err

    # -- diffrax interface -----------------------------------------------------------------

    def init(self, terms, t0, t1, y0, args):
        f0 = terms.vf(t0, y0, args)
        # ρ as RKC starts (what `Auto` watches in explicit mode)
        rho, v = power_iteration(terms, t0, y0, args, random_unit(y0), self.init_power_iters)
        i32 = lambda k: jnp.asarray(k, jnp.int32)
        counts = {"num_vf": i32(1), "num_jvp": i32(self.init_power_iters),
                  "num_hessians": i32(0)}  # fmt: skip
        return f0, rho, v, i32(0), counts

    def resync(self, state, f1, rho, v):
        """The state after steps by another method (`Auto`'s explicit mode): its slope and
        spectral-radius estimate."""
        return f1, rho, v, state[3], state[4]

    def easy(self, h, state, to_explicit):
        """Whether `Auto` should hand back to Tsit5 (`explicit_below`; `to_explicit` is
        RKC's threshold and not used here)."""
        return jnp.abs(h) * state[1] < self.explicit_below

    @traced_once  # (diffrax traces `step` three times: `traced.py`)
    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        f0, _, v, age, counts = solver_state
        f0 = fsal_slope(terms, t0, y0, args, f0, made_jump)
        h = t1 - t0
        y, unravel = ravel_pytree(y0)
        vf_flat = lambda z: ravel_pytree(terms.vf(t0, unravel(z), args))[0]
        vecs, lam = self._eig(terms, t0, y0, args)
        y1, err = self._exprb43(vf_flat, y, ravel_pytree(f0)[0], vecs, lam, h)
        y1_tree = unravel(y1)
        f1 = terms.vf(t1, y1_tree, args)
        control = terms.contr(t0, t1)
        dense_info = dict(y0=y0, y1=y1_tree, k0=terms.prod(f0, control),
                          k1=terms.prod(f1, control))  # fmt: skip
        counts = {
            "num_vf": counts["num_vf"] + 3,
            "num_jvp": counts["num_jvp"] + y.size,
            "num_hessians": counts["num_hessians"] + 1,
        }
        # ρ from the exact spectrum (what `Auto` compares with its switch thresholds)
        state = (f1, jnp.max(jnp.abs(lam)), v, age + 1, counts)
        return y1_tree, unravel(err), dense_info, state, dfx.RESULTS.successful

    def work(self, solver_state) -> dict:
        """Gradients, Hessian-vector products and Hessians of the accepted steps."""
        return dict(solver_state[4])

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
