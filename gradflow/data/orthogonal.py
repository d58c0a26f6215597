"""Random orthonormal columns, shared by the teacher generator and the aligned inits."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


@functools.partial(jax.jit, static_argnums=(1, 2))
def _haar_columns(key, n: int, r: int) -> jax.Array:
    g = jax.random.normal(key, (n, r), dtype=jnp.float64)
    q, rr = jnp.linalg.qr(g, mode="reduced")
    signs = jnp.where(jnp.diagonal(rr) < 0, -1.0, 1.0)
    return q * signs


def orthonormal_columns(key, n: int, r: int) -> jax.Array:
    """An `n × r` matrix with orthonormal columns, Haar-distributed, float64.

    Drawn as the QR factor of an `n × r` standard Gaussian matrix, with the signs of the columns
    fixed so that `R` has a non-negative diagonal. Without the sign fix the distribution would
    depend on the QR implementation; with it, the result is Haar and deterministic in `key`.

    **Arguments:**

    - `key`: a `jax.random` key.
    - `n`: number of rows.
    - `r`: number of columns, `r ≤ n`.

    **Returns:** a float64 array of shape `(n, r)` with `QᵀQ = I_r` to rounding.
    """
    if r > n:
        raise ValueError(f"Cannot draw {r} orthonormal columns in dimension {n}; need r ≤ n.")
    return _haar_columns(key, n, r)


def basis_columns(n: int, r: int) -> jax.Array:
    """The first `r` standard basis vectors of `R^n` as columns, shape `(n, r)`, float64."""
    return jnp.eye(n, r, dtype=jnp.float64)
