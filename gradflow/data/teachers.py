"""Teacher datasets with exactly prescribed input–output statistics."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._misc import as_float64, is_tracing
from .._misc import positive_int as _positive_int
from .dataset import Dataset, LinearTeacher
from .orthogonal import basis_columns, orthonormalise
from .sampling import normal_arrays


def power_law(n: int, exponent: float, scale: float = 1.0) -> np.ndarray:
    r"""Power-law spectrum $s_k = \mathrm{scale}\cdot k^{-\mathrm{exponent}}$, $k = 1, \dots, n$.

    The data-spectrum axis of THEORY.md §1.7: a smaller exponent means smaller gaps between
    consecutive singular values, hence shorter plateaus; `exponent = 0` makes all values equal
    (a single drop).

    **Arguments:**

    - `n`: number of values, `n ≥ 1`.
    - `exponent`: decay exponent `a` (any finite real; `0` gives a flat spectrum).
    - `scale`: the first value `s_1`, positive and finite.

    **Returns:** a float64 NumPy array of shape `(n,)`.
    """
    n = _positive_int(n, "n")
    exponent, scale = float(exponent), float(scale)
    if not np.isfinite(exponent):
        raise ValueError(f"`exponent` must be finite, got {exponent}.")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"`scale` must be positive and finite, got {scale}.")
    k = np.arange(1, n + 1, dtype=np.float64)
    return scale * k ** (-exponent)


def linear_teacher(
    singular_values,
    *,
    in_size: int | None = None,
    out_size: int | None = None,
    key,
    rotate: bool = True,
) -> Dataset:
    r"""Exactly whitened data from a linear teacher with prescribed singular values.

    The population statistics of THEORY.md §0 are realised exactly with $P = $ `in_size`
    samples: $X = \sqrt{P}\,Q$ (rows are examples) with $Q$ orthogonal, so
    $\Sigma_{xx} = X^\top X / P = I$, and $Y = X T^\top$ with $T = U\,\mathrm{diag}(s)\,V^\top$,
    so $\Sigma_{yx} = Y^\top X / P = T$. For a linear model $W$, `gf.losses.mse` is then exactly
    $\frac12\|T - W\|_F^2$: the Saxe formulas hold with no rescaling of time.

    With `rotate=False`, $Q = I$ and $U$, $V$ are the first $r$ standard basis vectors, which
    reproduces VALIDATION V1 exactly for `s = (3, 2, 1)`: $X = \sqrt3\,I$,
    $Y = \sqrt3\,\mathrm{diag}(3, 2, 1)$.

    Works under `jit`/`vmap` with traced `singular_values` (the checks then run on shapes only).

    **Arguments:**

    - `singular_values`: the `r` values $s_k$, positive and finite, in any order. The teacher
        stores them sorted in decreasing order, with the columns of `u` and `v` permuted to
        match (so the map is the one you specified).
    - `in_size`: input dimension (and number of examples), `≥ r`; default `r`.
    - `out_size`: output dimension, `≥ r`; default `r`.
    - `key`: a `jax.random` key; the result is deterministic in it.
    - `rotate`: if `True`, $Q$, $U$, $V$ are random (Haar); if `False`, axis-aligned.

    **Returns:** `Dataset(x, y, teacher=LinearTeacher(u, s, v))` with `x` of shape
    `(in_size, in_size)` and `y` of shape `(in_size, out_size)`.
    """
    if is_tracing(singular_values):
        s = jnp.asarray(singular_values, dtype=jnp.float64)
    else:
        s = as_float64(singular_values, "singular_values")
        if s.ndim == 1 and not bool(jnp.all(s > 0)):
            raise ValueError(
                f"`singular_values` must be positive, got {np.asarray(s)}; drop zero modes "
                "(they are the residual subspace) or take absolute values."
            )
    if s.ndim != 1:
        raise ValueError(
            f"`singular_values` must be 1-D (one value per mode), got shape {s.shape}."
        )
    r = s.shape[0]
    in_size = r if in_size is None else _positive_int(in_size, "in_size")
    out_size = r if out_size is None else _positive_int(out_size, "out_size")
    for name, size in (("in_size", in_size), ("out_size", out_size)):
        if size < r:
            raise ValueError(
                f"`{name}`={size} is smaller than the number of singular values r={r}; "
                f"pass {name} ≥ {r} or fewer singular values."
            )
    if rotate:
        # Draw outside the compiled build: the Gaussian draw is shared across shapes.
        gaussians = normal_arrays(key, [(in_size, in_size), (out_size, r), (in_size, r)], 1.0)
    else:
        gaussians = None
    return _build(s, gaussians, in_size, out_size)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _build(s, gaussians, in_size: int, out_size: int) -> Dataset:
    # One compiled computation per shape, instead of dozens of eager dispatches.
    r = s.shape[0]
    if gaussians is not None:
        q, u, v = (orthonormalise(g) for g in gaussians)
    else:
        q = jnp.eye(in_size, dtype=jnp.float64)
        u = basis_columns(out_size, r)
        v = basis_columns(in_size, r)
    order = jnp.argsort(-s, stable=True)
    teacher = LinearTeacher(u[:, order], s[order], v[:, order])
    x = jnp.sqrt(jnp.float64(in_size)) * q
    y = x @ teacher.matrix().T
    return Dataset(x, y, teacher=teacher)
