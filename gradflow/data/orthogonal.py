"""Random orthonormal columns, shared by the teacher generator and the aligned inits."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .sampling import normal_arrays


def orthonormal_columns(key, n: int, r: int) -> jax.Array:
    """An `n × r` matrix with orthonormal columns, Haar-distributed, float64.

    Drawn as the QR factor of an `n × r` standard Gaussian matrix (see `orthonormalise`).

    **Arguments:**

    - `key`: a `jax.random` key; the result is deterministic in it.
    - `n`: number of rows.
    - `r`: number of columns, `r ≤ n`.

    **Returns:** a float64 array of shape `(n, r)` with `QᵀQ = I_r` to rounding.
    """
    if r > n:
        raise ValueError(f"Cannot draw {r} orthonormal columns in dimension {n}; need r ≤ n.")
    (gaussian,) = normal_arrays(key, [(n, r)], 1.0)
    return orthonormalise(gaussian)


@jax.jit
def orthonormalise(gaussian: jax.Array) -> jax.Array:
    """The Q factor of a tall Gaussian matrix, with column signs fixed so `R` has a positive
    diagonal.

    Without the sign fix the distribution of Q would depend on the QR implementation; with
    it, Q is Haar-distributed (Mezzadri 2007) and a deterministic function of its input.
    """
    q, r = jnp.linalg.qr(gaussian, mode="reduced")
    signs = jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0)
    return q * signs


def basis_columns(n: int, r: int) -> jax.Array:
    """The first `r` standard basis vectors of `R^n` as columns, shape `(n, r)`, float64."""
    return jnp.eye(n, r, dtype=jnp.float64)
