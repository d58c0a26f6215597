"""Small helpers shared by every module: float64 handling and input checks."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np


def enable_x64() -> None:
    """Turn on 64-bit floats in JAX (`jax_enable_x64`).

    gradflow needs float64: init scales down to 1e-12 and absolute tolerances a thousand
    times below them are meaningless in float32. `import gradflow` calls this once; it is the
    only global JAX setting the package changes.
    """
    jax.config.update("jax_enable_x64", True)


def require_x64(where: str) -> None:
    """Refuse to run `where` (e.g. `"gf.flow"`) when float64 has been turned off again.

    `import gradflow` turns `jax_enable_x64` on; a user who turns it off afterwards would
    otherwise get a silently float32 solve (dtype-truncation warnings at best).
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            f"{where} needs float64, but jax_enable_x64 is off (it was turned off after "
            "`import gradflow`); turn it back on with "
            "jax.config.update('jax_enable_x64', True)."
        )


def as_float64(x, name: str) -> jax.Array:
    """Convert `x` to a float64 JAX array, refusing values that are not real and finite.

    Integer and float32 inputs are upcast (documented behaviour); complex input is refused.
    The check runs on concrete values only (it is skipped under tracing).
    """
    if isinstance(x, jax.core.Tracer):
        return jnp.asarray(x, dtype=jnp.float64)
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        raise TypeError(f"`{name}` must be real, got a complex array; pass its real part.")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be a numeric array, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}); pass at least one example.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"`{name}` contains {bad} non-finite value(s) (NaN or inf); clean the data first."
        )
    return jnp.asarray(arr)


def is_tracing(*xs) -> bool:
    """True if any leaf of `xs` is a JAX tracer (we are inside jit/vmap)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


def positive_int(value, name: str) -> int:
    """`value` as an int ≥ 1, or a TypeError/ValueError naming `name`."""
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an integer ≥ 1, got {value!r}.")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be an integer ≥ 1, got {value!r} of type {type(value).__name__}."
        ) from None
    if value < 1:
        raise ValueError(f"`{name}` must be ≥ 1, got {value}.")
    return value
