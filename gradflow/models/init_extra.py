r"""More initialisation schemes as model surgery (to be wired into `gf.models.init`).

Same conventions as `gf.models.init`: each function returns a NEW model built with
`eqx.tree_at`, float64, scales may be traced.

- `balanced`: two-layer nets with $\|a_{:,j}\| = \|(w_j, b_j)\|$ (Boursier & Flammarion,
    THEORY.md §4); for one output the readout is $\pm\|(w_j, b_j)\|$ with a random sign.
- `frobenius`: every weight array drawn with Frobenius norm ≈ `norm` (per-layer init of the
    in-context attention code, THEORY.md §6.4).
- `copy_unit`, `zero_unit`: place units on the invariant manifolds of THEORY.md §1.4
    (equal or proportional units, zero units); used by VALIDATION V12 and by the
    "init near an invariant manifold" experiments.
"""

from __future__ import annotations

import functools
import math
import operator

import equinox as eqx
import jax
import jax.numpy as jnp

from ..data.sampling import normal_arrays
from ._checks import check_init_scale
from .init import gaussian
from .two_layer import TwoLayer


def balanced(model: TwoLayer, std, *, key) -> TwoLayer:
    r"""Balanced Gaussian init of a two-layer net: $\|a_{:,j}\| = \|(w_j, b_j)\|$.

    $w_j$ (and $b_j$) are i.i.d. $N(0, \mathrm{std}^2)$; the readout of unit $j$ is
    $\|(w_j, b_j)\|$ times a uniformly random unit vector of $\mathbb R^{out}$ (a random sign
    for scalar output). For homogeneous activations (ReLU, linear) the flow conserves
    $\|a_{:,j}\|^2 - \|w_j\|^2 - b_j^2$, so units stay balanced (Boursier & Flammarion,
    THEORY.md §4; their defaults are $\mathrm{std} = \lambda/\sqrt m$).

    **Arguments:**

    - `model`: a `gf.models.TwoLayer`.
    - `std`: per-entry standard deviation of the first layer, `> 0`, finite.
    - `key`: a `jax.random` key.

    **Returns:** a new `TwoLayer`.
    """
    if not isinstance(model, TwoLayer):
        raise TypeError(
            f"`model` must be a gf.models.TwoLayer for the balanced init, got "
            f"{type(model).__name__}."
        )
    check_init_scale(std, "std")
    h = model.width
    shapes = [(h, model.in_size), (h,), (model.out_size, h)]
    w, b, direction = normal_arrays(key, shapes, 1.0)
    std = jnp.asarray(std, dtype=jnp.float64)
    w, b = std * w, std * b
    norm_sq = jnp.sum(w**2, axis=1) + (b**2 if model.bias else 0.0)
    direction = direction / jnp.linalg.norm(direction, axis=0)
    a = direction * jnp.sqrt(norm_sq)
    if model.bias:
        return eqx.tree_at(lambda m: (m.w, m.b, m.a), model, (w, b, a))
    return eqx.tree_at(lambda m: (m.w, m.a), model, (w, a))


def frobenius(model, norm, *, key):
    r"""Draw every float array with i.i.d. $N(0, \mathrm{norm}^2/\mathrm{numel})$ entries.

    Each array (layer) then has Frobenius norm ≈ `norm` whatever its size: the per-layer
    init of the in-context attention code (THEORY.md §6.4, ATTN_S), for any model family.

    **Arguments:**

    - `model`: any equinox Module.
    - `norm`: target Frobenius norm per array, `≥ 0`, finite.
    - `key`: a `jax.random` key.
    """
    check_init_scale(norm, "norm", allow_zero=True)
    unit = gaussian(model, 1.0, key=key)
    norm = jnp.asarray(norm, dtype=jnp.float64)
    return jax.tree.map(
        lambda x: norm * x / math.sqrt(x.size) if eqx.is_inexact_array(x) else x, unit
    )


def copy_unit(model, src: int, dst: int, gamma=1.0):
    r"""Set unit `dst` to `gamma` times unit `src` (every field of the unit is scaled).

    With `gamma = 1` this is the equal-unit manifold $\theta_{dst} = \theta_{src}$ (any
    activation); with `gamma > 0` and a positively homogeneous unit (ReLU, linear) it is the
    proportional manifold $\theta_{dst} = \gamma\,\theta_{src}$ (THEORY.md §1.4). Both are
    invariant under the exact flow.

    **Arguments:**

    - `model`: a model whose class declares its unit axes (`TwoLayer`, `Conv1D`, the
        attention models).
    - `src`, `dst`: unit indices, `0 ≤ · < number of units`.
    - `gamma`: the factor (may be traced).
    """
    axes = _unit_axes(model)
    n = _num_units(model, axes)
    src, dst = _index(src, n, "src"), _index(dst, n, "dst")
    names = [name for name in axes if getattr(model, name) is not None]
    new = [_copy_along(getattr(model, k), src, dst, gamma, axes[k]) for k in names]
    return eqx.tree_at(lambda m: [getattr(m, k) for k in names], model, new)


@functools.partial(jax.jit, static_argnums=4)
def _copy_along(x, src, dst, gamma, axis: int):
    # one compile per array shape (the indices and gamma are traced), not one per operation
    x = jnp.moveaxis(x, axis, 0)
    x = x.at[dst].set(gamma * x[src])
    return jnp.moveaxis(x, 0, axis)


def zero_unit(model, j: int):
    """Set every field of unit `j` to exactly zero: a zero unit stays zero under the flow."""
    return copy_unit(model, j, j, 0.0)


def _unit_axes(model) -> dict[str, int]:
    axes = getattr(type(model), "UNIT_AXES", None)
    if axes is None:
        raise TypeError(
            f"`model` ({type(model).__name__}) does not declare its units (a UNIT_AXES class "
            "attribute); unit surgery works on TwoLayer, Conv1D and the attention models."
        )
    return axes


def _num_units(model, axes) -> int:
    name = next(iter(axes))
    return getattr(model, name).shape[axes[name]]


def _index(i, n: int, name: str) -> int:
    try:
        i = operator.index(i)
    except TypeError:
        raise TypeError(f"`{name}` must be an integer unit index, got {i!r}.") from None
    if not 0 <= i < n:
        raise ValueError(f"`{name}`={i} is out of range for a model with {n} units.")
    return i
