r"""A Rosenbrock-W solver (ROS34PW2) on a reused eigendecomposition of the Hessian.

Gradient flow $\dot\theta = F(\theta) = -\nabla L(\theta)$ is stiff after its first escape:
the directions already learned have curvature $\lambda_{max}$ far above the rate of the next
slow escape. A linearly implicit (Rosenbrock) step treats those directions implicitly,

$$(I - h\gamma W)\,k_i = h\,F\Big(\theta_n + \sum_{j<i}\alpha_{ij}k_j\Big)
+ hW\sum_{j<i}\gamma_{ij}k_j,\qquad \theta_{n+1} = \theta_n + \sum_i b_i k_i,$$

with no step-size limit $h < c/\lambda_{max}$. A classical Rosenbrock method needs
$W = F'(\theta_n)$ at every step; a **W-method** keeps its order for *any* matrix $W$ (its
order conditions are written for $W \ne F'$), and only its stability depends on how well
$W$ captures the stiff directions. That is what makes the linear algebra cheap here:

1. $W$ is the stable part of the Jacobian $J = -\nabla^2 L$ at some recent point: one dense
   Hessian ($P$ batched Hessian-vector products) and one `eigh`, $J = V\,\mathrm{diag}(\lambda)
   V^\top$, then $W = V\,\mathrm{diag}(\min(\lambda, 0))\,V^\top$. Every solve with
   $I - h\gamma W$ is then two $P \times P$ matrix-vector products, for any $h$.
2. The decomposition is reused for `refresh_every` accepted steps, and refreshed early when a
   step with a stale one would be rejected (the step is then redone in the same call, as RKC
   redoes a step on a stale spectral radius). Its $O(P^3)$ cost is spread over those steps.
3. The unstable directions of a saddle ($\lambda > 0$) are left out of $W$: there the
   method is the explicit Runge–Kutta method of its $\alpha, b$ (third order, for any $W$),
   and $I - h\gamma W$ can never be singular.

We measured the alternative first: exprb43 (`ExpRB`) with a Hessian kept for 5 steps drops to
second order and its error estimate stops bounding the error (ExpRB's docstring). A W-method's
embedded pair is a W-method too, so its estimate stays honest with a stale $W$.

The method is Rang & Angermann's ROS34PW2 (BIT 45, 2005): 4 stages, order 3 with an
embedded order-2 solution, L-stable, stiffly accurate. Cost per step: 4 gradients (the slope
at the step end, for dense output, starts the next step) and 9 $P \times P$ matrix-vector
products, plus a Hessian and an `eigh` every `refresh_every` steps or on a redo.

**Measured** (benchmark cases, `Auto(dense=RosW(), dense_max=400)` against the defaults;
root-found drop-time errors). It needs far fewer steps than RKC in stiff phases, but on CPU
the dense products are memory-bound (a 192 × 192 matrix read 9 times per step: a stiff step
costs ~4× a Tsit5 step), so it is not `Auto`'s default:

- 3-layer linear (P = 192), σ = 1e-3: 402 stiff steps (RKC 1,958), 0.49 s (RKC 0.08 s);
  σ = 1e-6: 1,315 stiff steps (RKC 6,542), 1.24 s (RKC 1.55 s), drop error 5.9e-4 (1.2e-4).
- Type III quadratic net (P = 12), σ = 1e-4: 5.0 ms (exprb43 6.1 ms), drop error 5.3e-5
  (1.3e-5); separate-KQ attention (P = 21): 8.7 ms (12.1 ms), 1.3e-4 (1.1e-5).
- Alone (`solver="rosw"`) its drop times converge with the tolerance: 1e-4 at rtol = 1e-6,
  1.9e-6 at 1e-8 (2-layer linear test case), with one Hessian per ~20 steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .rkc import power_iteration, random_unit

# ROS34PW2 (Rang & Angermann 2005), in the form (I − hγW)k_i = hF(y + Σ α_ij k_j) + hW Σ γ_ij k_j
GAMMA = 4.3586652150845900e-01
ALPHA = np.array([
    [0.0, 0.0, 0.0, 0.0],
    [8.7173304301691801e-01, 0.0, 0.0, 0.0],
    [8.4457060015369423e-01, -1.1299064236484185e-01, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
])  # fmt: skip
GAMMAS = np.array([
    [0.0, 0.0, 0.0, 0.0],
    [-8.7173304301691801e-01, 0.0, 0.0, 0.0],
    [-9.0338057013044082e-01, 5.4180672388095326e-02, 0.0, 0.0],
    [2.4212380706095346e-01, -1.2232505839045147e00, 5.4526025533510214e-01, 0.0],
])  # fmt: skip
B = np.array([2.4212380706095346e-01, -1.2232505839045147e00, 1.5452602553351020e00,
              4.3586652150845900e-01])  # fmt: skip
B_HAT = np.array([3.7810903145819369e-01, -9.6042292212423178e-02, 0.5,
                  2.1793326075422950e-01])  # fmt: skip


class RosW(dfx.AbstractAdaptiveSolver):
    r"""Rosenbrock-W method ROS34PW2 (order 3, embedded order 2) with $W$ the stable part of
    a reused eigendecomposition of the Jacobian $-\nabla^2 L$ (see the module docstring).

    **Arguments:**

    - `refresh_every`: accepted steps between fresh Hessians (default 20).
    - `rtol`, `atol`: the controller's tolerances, used only to decide whether a step with a
      stale $W$ would be rejected (then $W$ is refreshed and the step redone); `None` (the
      default unless `gf.flow` fills them in) never redoes.
    - `power_iters`, `init_power_iters`: power iterations per spectral-radius refresh in
      `Auto`'s explicit mode, and at the start (defaults 3 and 20).
    - `explicit_below`: `Auto` switches back to Tsit5 when $h\rho$ is below this (default 1.0).

    Works on any pytree of float arrays (raveled to one vector inside the step). Counts in
    its state: `num_vf` gradients, `num_jvp` Hessian-vector products ($P$ per Hessian),
    `num_hessians`.
    """

    refresh_every: int = 20
    rtol: float | None = None
    atol: jax.Array | float | None = None
    power_iters: int = 3
    init_power_iters: int = 20
    explicit_below: float = 1.0

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., dfx.ThirdOrderHermitePolynomialInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation
    )

    def order(self, terms):
        return 3

    def error_order(self, terms):
        return 3

    def _eig(self, terms, t, y, args):
        """(V, w): W = V diag(w) Vᵀ, w = min(λ, 0) for the symmetrised Jacobian at y."""
        flat, unravel = ravel_pytree(y)
        f = lambda z: ravel_pytree(terms.vf(t, unravel(z), args))[0]
        jac = jax.jacfwd(f)(flat)
        lam, vecs = jnp.linalg.eigh(0.5 * (jac + jac.T))
        return vecs, jnp.minimum(lam, 0.0)

    def _ros34pw2(self, vf_flat, y, f0, vecs, w, h):
        """One step in the eigenbasis of W: returns (y1, error estimate)."""
        denom = 1.0 - h * GAMMA * w
        cs = []  # c_i = Vᵀ k_i
        for i in range(4):
            if i == 0:
                fi = f0
            else:
                u = y + vecs @ sum(ALPHA[i, j] * cs[j] for j in range(i) if ALPHA[i, j] != 0)
                fi = vf_flat(u)
            rhs = h * (vecs.T @ fi)
            if i > 0:
                rhs = rhs + h * w * sum(GAMMAS[i, j] * cs[j] for j in range(i))
            cs.append(rhs / denom)
        y1 = y + vecs @ sum(B[i] * cs[i] for i in range(4))
        err = vecs @ sum((B[i] - B_HAT[i]) * cs[i] for i in range(4))
        return y1, err

    def _rejected(self, y0, y1, err):
        """Whether the controller (max norm, these tolerances) would reject this step."""
        scale = self.atol + self.rtol * jnp.maximum(jnp.abs(y0), jnp.abs(y1))
        return jnp.max(jnp.abs(err) / scale) > 1.0

    # -- diffrax interface -----------------------------------------------------------------

    def init(self, terms, t0, t1, y0, args):
        f0 = terms.vf(t0, y0, args)
        rho, v = power_iteration(terms, t0, y0, args, random_unit(y0), self.init_power_iters)
        vecs, w = self._eig(terms, t0, y0, args)
        i32 = lambda k: jnp.asarray(k, jnp.int32)
        size = vecs.shape[0]
        counts = {"num_vf": i32(1), "num_jvp": i32(self.init_power_iters + size),
                  "num_hessians": i32(1), "num_redos": i32(0)}  # fmt: skip
        return f0, rho, v, i32(0), counts, vecs, w

    def resync(self, state, f1, rho, v):
        """The state after steps by another method (`Auto`'s explicit mode): its slope and
        spectral-radius estimate; the decomposition is marked stale."""
        return (f1, rho, v, jnp.asarray(self.refresh_every, jnp.int32)) + tuple(state[4:])

    def easy(self, h, state, to_explicit):
        """Whether `Auto` should hand back to Tsit5 (`explicit_below`)."""
        return jnp.abs(h) * state[1] < self.explicit_below

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        f0, rho, v, age, counts, vecs, w = solver_state
        if made_jump is not False:
            f0 = jax.lax.cond(made_jump, lambda: terms.vf(t0, y0, args), lambda: f0)
        h = t1 - t0
        y, unravel = ravel_pytree(y0)
        f0_flat = ravel_pytree(f0)[0]
        vf_flat = lambda z: ravel_pytree(terms.vf(t0, unravel(z), args))[0]
        fresh_eig = lambda: self._eig(terms, t0, y0, args)
        stale = age >= self.refresh_every
        vecs, w = jax.lax.cond(stale, fresh_eig, lambda: (vecs, w))
        refreshed = stale
        y1, err = self._ros34pw2(vf_flat, y, f0_flat, vecs, w, h)
        redo = jnp.asarray(False)
        if self.rtol is not None and self.atol is not None:
            redo = jnp.logical_and(~refreshed, self._rejected(y, y1, err))

            def again():
                vecs2, w2 = fresh_eig()
                y1b, errb = self._ros34pw2(vf_flat, y, f0_flat, vecs2, w2, h)
                return y1b, errb, vecs2, w2

            y1, err, vecs, w = jax.lax.cond(redo, again, lambda: (y1, err, vecs, w))
            refreshed = jnp.logical_or(refreshed, redo)
        y1_tree = unravel(y1)
        f1 = terms.vf(t1, y1_tree, args)
        control = terms.contr(t0, t1)
        dense_info = dict(y0=y0, y1=y1_tree, k0=terms.prod(f0, control),
                          k1=terms.prod(f1, control))  # fmt: skip
        n_hess = refreshed.astype(jnp.int32)
        counts = {
            "num_vf": counts["num_vf"] + 4 + 3 * redo.astype(jnp.int32),
            "num_jvp": counts["num_jvp"] + y.size * n_hess,
            "num_hessians": counts["num_hessians"] + n_hess,
            "num_redos": counts["num_redos"] + redo.astype(jnp.int32),
        }
        rho = jnp.where(refreshed, jnp.max(-w), rho)
        age = jnp.where(refreshed, 1, age + 1)
        state = (f1, rho, v, age, counts, vecs, w)
        return y1_tree, unravel(err), dense_info, state, dfx.RESULTS.successful

    def work(self, solver_state) -> dict:
        """Gradients, Hessian-vector products, Hessians and redos of the accepted steps."""
        return dict(solver_state[4])

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
