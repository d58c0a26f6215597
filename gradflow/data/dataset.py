"""A supervised dataset as a pytree, optionally carrying the linear teacher that made it."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import as_float64, is_tracing


class LinearTeacher(eqx.Module):
    r"""A linear teacher in factored (SVD) form, $\Sigma_{yx} = U\,\mathrm{diag}(s)\,V^\top$.

    Keeping the factors (not only the product) lets the decoupled init align a network with the
    teacher's modes and lets the theory read off $s_k$ without an SVD of noisy statistics.
    `linear_teacher` stores `s` sorted in decreasing order, with `u` and `v` columns matching.

    **Fields:**

    - `u`: left singular vectors, shape `(out_size, r)`, orthonormal columns.
    - `s`: singular values, shape `(r,)`.
    - `v`: right singular vectors, shape `(in_size, r)`, orthonormal columns.
    """

    u: jax.Array
    s: jax.Array
    v: jax.Array

    def __init__(self, u, s, v):
        """**Arguments:**

        - `u`: array of shape `(out_size, r)`.
        - `s`: array of shape `(r,)`.
        - `v`: array of shape `(in_size, r)`.

        Concrete inputs are converted to float64 and checked to be finite; under tracing they
        are stored as given (shapes are still checked, they are static).
        """
        if is_tracing(u, s, v):
            u, s, v = (jnp.asarray(a) for a in (u, s, v))
        else:
            u, s, v = as_float64(u, "u"), as_float64(s, "s"), as_float64(v, "v")
        if s.ndim != 1:
            raise ValueError(f"`s` must be 1-D (one value per mode), got shape {s.shape}.")
        r = s.shape[0]
        for name, a in (("u", u), ("v", v)):
            if a.ndim != 2 or a.shape[1] != r:
                raise ValueError(
                    f"`{name}` must have shape (size, {r}) to match `s` of shape {s.shape}, "
                    f"got {a.shape}; pass one column per singular value."
                )
        self.u = u
        self.s = s
        self.v = v

    @property
    def rank(self) -> int:
        """Number of modes `r` (static)."""
        return self.s.shape[0]

    def matrix(self) -> jax.Array:
        r"""The teacher map $U\,\mathrm{diag}(s)\,V^\top$, shape `(out_size, in_size)`."""
        return (self.u * self.s) @ self.v.T


class Dataset(eqx.Module):
    """Inputs and targets, rows are examples; a plain pytree usable inside `jax.jit`/`vmap`.

    Losses take `(model, data)` and vmap the model over `data.x`, so a dataset is just two
    arrays (plus an optional `teacher` for datasets generated from a known linear map).

    **Fields:**

    - `x`: inputs, shape `(P, in_size)`.
    - `y`: targets, shape `(P, out_size)`.
    - `teacher`: the `LinearTeacher` behind the targets, or `None`.
    """

    x: jax.Array
    y: jax.Array
    teacher: LinearTeacher | None = None

    def __init__(self, x, y, teacher: LinearTeacher | None = None):
        """**Arguments:**

        - `x`: inputs, shape `(P, in_size)`. A 1-D `x` means one feature per example and is
            reshaped to `(P, 1)`.
        - `y`: targets, shape `(P, out_size)`. A 1-D `y` (scalar targets) becomes `(P, 1)`.
        - `teacher`: optional `LinearTeacher` that generated `y`.

        Concrete inputs are converted to float64 (integer and float32 inputs are upcast: the
        flow needs float64 for small inits) and must be non-empty and finite. Under `jit` or
        `vmap` the arrays are stored as given, after the static shape checks.

        **Raises:** `ValueError` naming `x` or `y` for wrong shapes, mismatched numbers of
        rows, empty or non-finite values; `TypeError` for complex or non-numeric input.
        """
        if is_tracing(x, y):
            x, y = jnp.asarray(x), jnp.asarray(y)
        else:
            x, y = as_float64(x, "x"), as_float64(y, "y")
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        if x.ndim != 2:
            raise ValueError(
                f"`x` must be 2-D with rows as examples, shape (P, in_size); got shape {x.shape}."
            )
        if y.ndim != 2:
            raise ValueError(
                f"`y` must be 2-D with rows as examples, shape (P, out_size); got shape {y.shape}."
            )
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"`x` and `y` must have the same number of rows (examples): x has shape "
                f"{x.shape}, y has shape {y.shape}. Rows are examples; transpose if needed."
            )
        if teacher is not None:
            if not isinstance(teacher, LinearTeacher):
                raise TypeError(
                    f"`teacher` must be a LinearTeacher or None, got {type(teacher).__name__}."
                )
            if teacher.v.shape[0] != x.shape[1] or teacher.u.shape[0] != y.shape[1]:
                raise ValueError(
                    f"`teacher` maps {teacher.v.shape[0]} inputs to {teacher.u.shape[0]} "
                    f"outputs, but `x` has {x.shape[1]} features and `y` has {y.shape[1]}."
                )
        self.x = x
        self.y = y
        self.teacher = teacher

    @property
    def num_examples(self) -> int:
        """Number of examples `P`."""
        return self.x.shape[0]

    @property
    def in_size(self) -> int:
        """Number of input features."""
        return self.x.shape[1]

    @property
    def out_size(self) -> int:
        """Number of outputs."""
        return self.y.shape[1]
