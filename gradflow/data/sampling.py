"""i.i.d. Gaussian draws for several weight arrays at once, with few compilations."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

_MIN_BUCKET = 1024  # small models all share one compiled draw


def normal_arrays(key, shapes, std) -> tuple[jax.Array, ...]:
    r"""Float64 arrays of the given shapes with i.i.d. $N(0, \mathrm{std}^2)$ entries.

    All entries come from ONE standard-normal draw whose length is rounded up to a power of
    two (at least 1024), then sliced. Compiling the random-bit generator takes a noticeable
    fraction of a second per distinct shape on CPU; with one draw per size bucket, building
    many models of different widths (tests, sweeps) reuses a handful of compiled draws. The
    result is deterministic in `key` and `shapes`.

    **Arguments:**

    - `key`: a `jax.random` key (may be traced, e.g. under a `vmap` over seeds).
    - `shapes`: a sequence of array shapes.
    - `std`: the standard deviation, a scalar (may be traced).

    **Returns:** a tuple of float64 arrays, one per shape.
    """
    shapes = tuple(tuple(int(d) for d in s) for s in shapes)
    total = sum(math.prod(s) for s in shapes)
    bucket = max(_MIN_BUCKET, 1 << max(total - 1, 0).bit_length())
    flat = _standard_normal(key, bucket)
    return _slice(flat, jnp.asarray(std, dtype=jnp.float64), shapes)


@functools.partial(jax.jit, static_argnums=1)
def _standard_normal(key, size: int) -> jax.Array:
    return jax.random.normal(key, (size,), dtype=jnp.float64)


@functools.partial(jax.jit, static_argnums=2)
def _slice(flat, std, shapes: tuple) -> tuple[jax.Array, ...]:
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(std * flat[start : start + size].reshape(shape))
        start += size
    return tuple(out)
