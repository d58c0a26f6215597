"""Sliding windows of a 1-D signal: the shared input map of conv models and conv teachers."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def num_positions(length: int, kernel_size: int, stride: int) -> int:
    """Number of valid windows, `(length - kernel_size) // stride + 1` (no padding)."""
    if kernel_size > length:
        raise ValueError(
            f"`kernel_size`={kernel_size} is longer than the signal (length {length}); use "
            f"kernel_size ≤ {length}."
        )
    return (length - kernel_size) // stride + 1


def patches(x: jax.Array, kernel_size: int, stride: int) -> jax.Array:
    """Windows of ONE signal `x` of shape `(length,)`, shape `(positions, kernel_size)`."""
    n = num_positions(x.shape[-1], kernel_size, stride)
    index = stride * jnp.arange(n)[:, None] + jnp.arange(kernel_size)[None, :]
    return x[index]
