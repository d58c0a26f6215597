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
   V^\top$, then $W = V_k\,\mathrm{diag}(\min(\lambda, 0))\,V_k^\top$ on the `rank` $= k$
   stiffest eigenpairs (all by default). Every solve with $I - h\gamma W$ is then two
   $P \times k$ matrix-vector products, for any $h$.
2. The decomposition is reused for `refresh_every` accepted steps (and refreshed on the first
   step, and after `Auto` hands over from its explicit mode). Its $O(P^3)$ cost (~2 ms at
   $P = 192$ on one CPU core; the Hessian itself ~0.2 ms) is spread over those steps.
3. The unstable directions of a saddle ($\lambda > 0$), and the directions beyond `rank`, are
   left out of $W$: there the method is the explicit Runge–Kutta method of its $\alpha, b$
   (third order, for any $W$), and $I - h\gamma W$ can never be singular. A stiff direction
   left out limits the step as it would an explicit method, so `rank` must cover the stiff
   directions (3-layer linear benchmark case, P = 192: 55 curvatures above 1; rank 64
   takes 1,735 steps at σ = 1e-4, rank 32 30,213).

We measured the alternative first: exprb43 (`ExpRB`) with a Hessian kept for 5 steps drops to
second order and its error estimate stops bounding the error (ExpRB's docstring). A W-method's
embedded pair is a W-method too, so its estimate stays honest with a stale $W$ (the tests
check third order with $W$ frozen at $t_0$). Refreshing when a stale-$W$ step would be
rejected, and redoing it, cost more than it saved: every rejected attempt then paid for an
`eigh` whose result diffrax discards with the step (3-layer σ = 1e-3: 0.78 s against 0.27 s).

The method is Rang & Angermann's ROS34PW2 (BIT 45, 2005): 4 stages, order 3 with an
embedded order-2 solution, L-stable, stiffly accurate. Cost per step: 4 gradients (the slope
at the step end, for dense output, starts the next step) and 8 $P \times k$ products, plus a
Hessian and an `eigh` every `refresh_every` steps. Being third order, its error estimate is
judged `error_scale` = 10 times tighter (as `Auto` judges RKC's 15 times tighter): at scale 1
the 3-layer σ = 1e-6 drop times were off by 4.8e-4, at 10 by 9.5e-5.

**Measured** as `Auto`'s stiff method (`RosW(rank=64)`, for 129 ≤ P ≤ 256) against RKC, on
the 3-layer linear benchmark cases (P = 192; root-found drop-time errors):

- σ = 1e-3: 1,027 steps, 73 ms, 2.7e-5 (RKC: 2,484 steps, 70 ms, 5.8e-5);
- σ = 1e-4: 1,735 steps, 112 ms, 3.4e-5 (RKC: 4,140, 163 ms, 6.8e-5);
- σ = 1e-6: 3,355 steps, 0.28 s, 9.5e-5 (RKC: 7,910, 1.8 s, 1.2e-4); full rank 0.41 s.

**Many parameters** (`eig="subspace"`, with `rank = k`): the dense Hessian ($P$ products) and
its `eigh` ($O(P^3)$) are replaced by block subspace iteration on Hessian-vector products
(`gradflow._flow.subspace`: $k$ batched products and a CholeskyQR2 per sweep, 3 sweeps from a
random start, then 2 warm-started per refresh, and a $k \times k$ Rayleigh–Ritz `eigh`).
Measured: on the 3-layer cases (P = 192, k = 64) it takes the dense version's steps
(σ = 1e-3: 1,021 against 1,027, 70 against 76 ms; σ = 1e-4: 1,725 against 1,735); on the
wide quadratic benchmark case (`quad32_s1e-4`, P = 1,056, k = 64) 578 steps and 216 ms
against RKC's 1,357 steps and 252 ms (10 first sweeps instead of 3: 310 ms). It is not
`Auto`'s default beyond 256 parameters: the rank must cover the stiff directions, which are
not known in advance, and a rank too small is far worse than RKC (k = 32 there: 15,813
steps, 2.5 s).

On the 2-layer linear cases (P = 128, stiff for ~10 steps) it is 25–50% slower than RKC: the
Hessian and the $P \times k$ state carried through every explicit step are not paid back.
Two implementation notes from the measurements: `f @ V` instead of `V.T @ f` (XLA on CPU
otherwise copies the transpose of the carried matrix every time: 158 → 37 µs per step), and
no decomposition at `init` (`Auto`'s first plateau is not stiff).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .exprb import dense_eig
from .rkc import fsal_slope, power_iteration, random_unit
from .subspace import random_basis, subspace_eig
from .traced import traced_once

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

    - `refresh_every`: accepted steps between fresh Hessians (default 200).
    - `rank`: how many of the stiffest eigenpairs make $W$ (default `None`: all).
    - `eig`: `"dense"` (default: a dense Hessian and `eigh`) or `"subspace"`: block subspace
      iteration on Hessian-vector products (`gradflow._flow.subspace`), for many parameters;
      needs `rank` (the subspace size) and costs `rank` batched products per sweep instead
      of $P$ products and an $O(P^3)$ `eigh`.
    - `subspace_sweeps`: sweeps per refresh, warm-started from the previous basis (default 2).
    - `init_subspace_sweeps`: sweeps at the first refresh, from a random basis (default 3).
    - `error_scale`: factor on the error estimate (default 10, see the module docstring).
    - `power_iters`, `init_power_iters`: power iterations per spectral-radius refresh in
      `Auto`'s explicit mode, and at the start (defaults 3 and 20).
    - `explicit_below`: `Auto` switches back to Tsit5 when $h\rho$ is below this (default 1.0).

    Works on any pytree of float arrays (raveled to one vector inside the step). Counts in
    its state: `num_vf` gradients, `num_jvp` Hessian-vector products ($P$ per Hessian),
    `num_hessians`.
    """

    refresh_every: int = 200
    rank: int | None = None
    eig: str = "dense"
    subspace_sweeps: int = 2
    init_subspace_sweeps: int = 3
    error_scale: float = 10.0
    power_iters: int = 3
    init_power_iters: int = 20
    explicit_below: float = 1.0

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., dfx.ThirdOrderHermitePolynomialInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation
    )

    def __check_init__(self):
        if self.eig not in ("dense", "subspace"):
            raise ValueError(f"RosW(eig={self.eig!r}): use eig='dense' or eig='subspace'.")
        if self.eig == "subspace" and self.rank is None:
            raise ValueError(
                "RosW(eig='subspace') needs rank=k, the size of the subspace (e.g. rank=32): "
                "with every direction it would cost a dense Hessian."
            )

    def order(self, terms):
        return 3

    def error_order(self, terms):
        return 3

    def _eig(self, terms, t, y, args, vecs, first):
        """(V, w): W = V diag(w) Vᵀ with w = min(λ, 0) for the symmetrised Jacobian at y,
        keeping the `rank` most negative (stiffest) eigenpairs; or, with `eig="subspace"`,
        the Ritz pairs of a subspace iteration warm-started from `vecs` (more sweeps on the
        `first` refresh)."""
        if self.eig == "subspace":
            flat, unravel = ravel_pytree(y)
            vf_flat = lambda z: ravel_pytree(terms.vf(t, unravel(z), args))[0]
            start = jax.lax.cond(
                first, lambda: random_basis(*vecs.shape, vecs.dtype), lambda: vecs
            )
            vecs, lam = subspace_eig(vf_flat, flat, start, self._sweeps(first))
            return vecs, jnp.minimum(lam, 0.0)
        vecs, lam = dense_eig(terms, t, y, args)  # ascending: the stiffest first
        k = self._rank(lam.shape[0])
        return vecs[:, :k], jnp.minimum(lam[:k], 0.0)

    def _sweeps(self, first):
        """Subspace-iteration sweeps of a refresh (more from the random start)."""
        return jnp.where(first, self.init_subspace_sweeps, self.subspace_sweeps)

    def _refresh_jvps(self, size, first):
        """Hessian-vector products of one refresh."""
        if self.eig == "subspace":
            return self._rank(size) * (self._sweeps(first) + 1)
        return jnp.asarray(size)

    def _rank(self, size: int) -> int:
        return size if self.rank is None else min(self.rank, size)

    def _ros34pw2(self, vf_flat, y, f0, vecs, w, h):
        r"""One step with W = V diag(w) Vᵀ (V: P × k orthonormal columns): (y1, error).

        With c_j = Vᵀk_j, the stage solve is
        $k_i = g + V\,(d \odot V^\top g)$, $d = 1/(1 - h\gamma w) - 1$,
        $g = hF(U_i) + hV(w \odot \sum_j \gamma_{ij} c_j)$: two P × k products per stage.
        """
        d = 1.0 / (1.0 - h * GAMMA * w) - 1.0
        ks, cs = [], []
        for i in range(4):
            if i == 0:
                fi = f0
            else:
                fi = vf_flat(y + sum(ALPHA[i, j] * ks[j] for j in range(i) if ALPHA[i, j] != 0))
            # Vᵀg (`fi @ vecs`: `vecs.T @ fi` would copy the transpose every step)
            vg = h * (fi @ vecs)
            coupling = 0.0
            if i > 0:
                coupling = h * w * sum(GAMMAS[i, j] * cs[j] for j in range(i))
                vg = vg + coupling
            c = (1.0 + d) * vg
            ks.append(h * fi + vecs @ (coupling + d * vg))
            cs.append(c)
        y1 = y + sum(B[i] * ks[i] for i in range(4))
        err = sum((B[i] - B_HAT[i]) * ks[i] for i in range(4))
        return y1, err

    # -- diffrax interface -----------------------------------------------------------------

    def init(self, terms, t0, t1, y0, args):
        f0 = terms.vf(t0, y0, args)
        rho, v = power_iteration(terms, t0, y0, args, random_unit(y0), self.init_power_iters)
        # no decomposition yet (W = 0), marked stale: the first step computes it, and under
        # `Auto` that is the first stiff step, not the start of a non-stiff first plateau
        size = sum(x.size for x in jax.tree.leaves(y0))
        dtype = jnp.result_type(*jax.tree.leaves(y0))
        k = self._rank(size)
        # (the subspace iteration's random start is drawn at its first refresh, not here:
        # most solves under `Auto` never get stiff)
        vecs, w = jnp.eye(size, k, dtype=dtype), jnp.zeros(k, dtype)
        i32 = lambda k: jnp.asarray(k, jnp.int32)
        counts = {"num_vf": i32(1), "num_jvp": i32(self.init_power_iters),
                  "num_hessians": i32(0)}  # fmt: skip
        return f0, rho, v, i32(self.refresh_every), counts, vecs, w

    def resync(self, state, f1, rho, v):
        """The state after steps by another method (`Auto`'s explicit mode): its slope and
        spectral-radius estimate; the decomposition is marked stale."""
        return (f1, rho, v, jnp.asarray(self.refresh_every, jnp.int32)) + tuple(state[4:])

    def easy(self, h, state, to_explicit):
        """Whether `Auto` should hand back to Tsit5 (`explicit_below`)."""
        return jnp.abs(h) * state[1] < self.explicit_below

    @traced_once  # (diffrax traces `step` three times: `traced.py`)
    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        f0, rho, v, age, counts, vecs, w = solver_state
        f0 = fsal_slope(terms, t0, y0, args, f0, made_jump)
        h = t1 - t0
        y, unravel = ravel_pytree(y0)
        f0_flat = ravel_pytree(f0)[0]
        vf_flat = lambda z: ravel_pytree(terms.vf(t0, unravel(z), args))[0]
        stale = age >= self.refresh_every
        first = counts["num_hessians"] == 0
        vecs, w = jax.lax.cond(
            stale, lambda: self._eig(terms, t0, y0, args, vecs, first), lambda: (vecs, w)
        )
        y1, err = self._ros34pw2(vf_flat, y, f0_flat, vecs, w, h)
        y1_tree = unravel(y1)
        f1 = terms.vf(t1, y1_tree, args)
        control = terms.contr(t0, t1)
        dense_info = dict(y0=y0, y1=y1_tree, k0=terms.prod(f0, control),
                          k1=terms.prod(f1, control))  # fmt: skip
        n_hess = stale.astype(jnp.int32)
        counts = {
            "num_vf": counts["num_vf"] + 4,
            "num_jvp": counts["num_jvp"] + n_hess * self._refresh_jvps(y.size, first),
            "num_hessians": counts["num_hessians"] + n_hess,
        }
        rho = jnp.where(stale, jnp.max(-w), rho)
        age = jnp.where(stale, 1, age + 1)
        state = (f1, rho, v, age, counts, vecs, w)
        err = self.error_scale * err
        return y1_tree, unravel(err), dense_info, state, dfx.RESULTS.successful

    def work(self, solver_state) -> dict:
        """Gradients, Hessian-vector products, Hessians and redos of the accepted steps."""
        return dict(solver_state[4])

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
