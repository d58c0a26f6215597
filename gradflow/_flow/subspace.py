r"""The stiffest eigenpairs of the Jacobian from Hessian-vector products (subspace iteration).

For many parameters a dense Hessian ($P$ Hessian-vector products) and its `eigh`
($O(P^3)$) are out of reach, but the stiff part of gradient flow's Jacobian
$J = -\nabla^2 L$ is low-dimensional: the curvature of the directions learned so far. Block
subspace iteration finds it with $k$ batched Hessian-vector products per sweep,

$$Z = J V,\quad V \leftarrow \mathrm{qr}(Z),$$

then one Rayleigh–Ritz step ($T = V^\top J V$, $k \times k$ `eigh`, $V \leftarrow V S$).
The iteration converges to the $k$ eigenvalues of largest modulus — after the first escape
the stiff (most negative) ones; a saddle's escape rates are small and positive. Warm-started
from the previous basis it needs only a few sweeps (`RosW` refreshes every 200 steps, while
the stiff subspace turns slowly). An unconverged basis is no error for a W-method (any $W$
keeps its order): it only leaves some stiffness to limit the step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_basis(size: int, k: int, dtype) -> jax.Array:
    """A fixed-seed random P × k matrix (the first start; the first sweep orthonormalizes)."""
    return jax.random.normal(jax.random.key(1), (size, k), dtype) / jnp.sqrt(size)


def orthonormalize(z: jax.Array) -> jax.Array:
    r"""An orthonormal basis of the columns of the P × k matrix `z`: CholeskyQR2 (two passes
    of $Q = Z R^{-1}$, $R^\top R = Z^\top Z$), shifted by $10^{-13}\,\mathrm{tr}(Z^\top Z)$
    so that dependent columns do not break it (they come out near zero, a smaller subspace).

    Two $P \times k \times k$ products and two $k \times k$ Cholesky factorisations: on one
    CPU core at P = 1,056, k = 64, `jnp.linalg.qr` (Householder) took 3.9 ms.
    """
    for _ in range(2):
        g = z.T @ z
        shift = 1e-13 * jnp.trace(g) + jnp.finfo(z.dtype).tiny
        g = g + shift * jnp.eye(g.shape[0], dtype=z.dtype)
        low = jnp.linalg.cholesky(g)
        z = jax.scipy.linalg.solve_triangular(low, z.T, lower=True).T
    return z


def subspace_eig(vf_flat, y, vecs, sweeps):
    """(V, λ) with $J V \\approx V \\mathrm{diag}(λ)$, λ ascending (the stiffest first), for
    $J$ the Jacobian of `vf_flat` at the flat state `y`, after `sweeps` (dynamic) sweeps of
    block subspace iteration from the P × k basis `vecs`, then a Rayleigh–Ritz step.
    Costs k·(sweeps + 1) Jacobian-vector products (batched over the k columns)."""

    def apply(v):  # J V, one batched JVP
        return jax.vmap(lambda c: jax.jvp(vf_flat, (y,), (c,))[1], in_axes=1, out_axes=1)(v)

    vecs = jax.lax.fori_loop(0, sweeps, lambda i, v: orthonormalize(apply(v)), vecs)
    t = vecs.T @ apply(vecs)
    lam, s = jnp.linalg.eigh(0.5 * (t + t.T))
    return vecs @ s, lam
