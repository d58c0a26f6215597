r"""Initialisation schemes as model surgery.

Each function takes a model and returns a NEW model whose weights are re-drawn with
`eqx.tree_at` (STYLE.md habit 4), so the init scale lives in one place instead of being threaded
through every constructor. All weights are float64. Scales may be traced (a `vmap` over init
scales); the value checks then run only on concrete inputs.

- `gaussian`: i.i.d. $N(0, \mathrm{std}^2)$, the isotropic small init of THEORY.md §0.
- `width_scaled`: variance $\mathrm{width}^{-\gamma}$ (Jacot et al., THEORY.md §3).
- `decoupled`: balanced spectral init aligned with a teacher (Saxe et al., THEORY.md §2).
- `low_rank_plus_noise`: near an invariant low-rank manifold (THEORY.md §1.7, "init structure").
"""

from __future__ import annotations

import functools
import math
import operator

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import as_float64, is_tracing
from ..data.dataset import Dataset, LinearTeacher
from ..data.orthogonal import basis_columns, orthonormalise
from ..data.sampling import normal_arrays
from .deep_linear import DeepLinear


def gaussian(model, std, *, key):
    r"""Re-draw every floating-point array of `model` i.i.d. from $N(0, \mathrm{std}^2)$.

    This is the isotropic init of THEORY.md §0 ("init scale" $\varepsilon$ = `std`), for any
    model family: every inexact array leaf is replaced, integer and static fields are kept.

    **Arguments:**

    - `model`: an equinox Module (any pytree).
    - `std`: per-entry standard deviation, finite and `≥ 0` (`0` puts the model exactly on
        the saddle at the origin, a fixed point of the flow).
    - `key`: a `jax.random` key.

    **Returns:** a new model of the same structure with float64 weights.
    """
    _check_nonnegative(std, "std")
    leaves = jax.tree.leaves(model)
    positions = [i for i, leaf in enumerate(leaves) if eqx.is_inexact_array(leaf)]
    if not positions:
        return model
    shapes = tuple(tuple(jnp.shape(leaves[i])) for i in positions)
    new = normal_arrays(key, shapes, std)
    where = lambda m: [jax.tree.leaves(m)[i] for i in positions]
    return eqx.tree_at(where, model, list(new))


def width_scaled(model, gamma, *, key):
    r"""Gaussian init with variance $\sigma^2 = \mathrm{width}^{-\gamma}$ (Jacot et al. 2021).

    As the width $w \to \infty$ this has a transition at $\gamma = 1$: for $\gamma < 1$ the net
    starts near a global minimum (lazy regime, no low-rank bias), for $\gamma > 1$ near the
    saddle at the origin, with a first plateau growing like $(\gamma - 1)\ln w$ (THEORY.md §3).

    **Arguments:**

    - `model`: a model with a static `width` field (e.g. `DeepLinear`).
    - `gamma`: the exponent $\gamma$, finite.
    - `key`: a `jax.random` key.

    **Returns:** `gaussian(model, width ** (-gamma / 2), key=key)`.
    """
    width = getattr(model, "width", None)
    if width is None:
        raise TypeError(
            f"`model` ({type(model).__name__}) has no `width` field; call "
            "`gaussian(model, std=width ** (-gamma / 2), key=key)` with the width you mean."
        )
    if not is_tracing(gamma):
        _check_finite(gamma, "gamma")
    std = jnp.asarray(width, dtype=jnp.float64) ** (-jnp.asarray(gamma, jnp.float64) / 2)
    return gaussian(model, std, key=key)


def decoupled(model: DeepLinear, teacher, a0, *, key=None) -> DeepLinear:
    r"""Balanced spectral ("decoupled") init aligned with the teacher's singular vectors.

    With the teacher $\Sigma_{yx} = U\,\mathrm{diag}(s)\,V^\top$ ($r$ modes) and width $\times r$
    matrices $R_l$ with orthonormal columns, set (with $A = \mathrm{diag}(a_0)$)

    $$W_1 = R_1 A V^\top,\quad W_l = R_l A R_{l-1}^\top\ (1 < l < L),\quad
      W_L = U A R_{L-1}^\top.$$

    Then $W_L \cdots W_1 = U\,\mathrm{diag}(a_0^L)\,V^\top$, the layers are balanced
    ($W_{l+1}^\top W_{l+1} = W_l W_l^\top$), and with whitened data the flow keeps this form:
    each mode's strength $u_k = a_k^L$ follows $\dot u = L\,u^{2-2/L}(s_k - u)$ exactly
    (Saxe et al., THEORY.md §2; VALIDATION V1 and V4). With `depth = 1`, $W = U A V^\top$.

    **Arguments:**

    - `model`: a `DeepLinear` whose `in_size`/`out_size` match the teacher's and whose width
        is at least the teacher's rank $r$ (when `depth ≥ 2`).
    - `teacher`: a `LinearTeacher`, or a `Dataset` carrying one (from `gf.data.linear_teacher`).
    - `a0`: per-layer strength, a scalar or an array of length $r$ (one per mode, in the
        teacher's order, i.e. decreasing $s_k$). Zero entries leave that mode exactly at its
        saddle. Must be finite.
    - `key`: if `None`, $R_l$ are the first $r$ standard basis vectors (so V1's setup gives
        $W_1 = W_2 = a_0 I$); otherwise independent random orthonormal columns per layer.

    **Returns:** a new `DeepLinear` with these weights.
    """
    model = _check_deep_linear(model)
    teacher = _resolve_teacher(teacher, model)
    r = teacher.rank
    a = _per_mode(a0, r, "a0")
    depth, width = model.depth, model.width
    if depth > 1 and width < r:
        raise ValueError(
            f"`model.width`={width} is smaller than the teacher's rank r={r}; the decoupled "
            f"init needs one hidden direction per mode: use width ≥ {r}."
        )
    if key is None or depth == 1:
        hidden = None
    else:
        hidden = normal_arrays(key, [(width, r)] * (depth - 1), 1.0)
    weights = _aligned_weights(teacher.u, teacher.v, a, hidden, width, depth)
    return eqx.tree_at(lambda m: m.weights, model, weights)


def low_rank_plus_noise(
    model: DeepLinear, teacher, *, rank: int, strength, noise, key
) -> DeepLinear:
    r"""A decoupled init on the top `rank` modes plus i.i.d. Gaussian noise on every entry.

    This starts near the invariant manifold of rank-`rank` weights but away from its saddles
    (THEORY.md §1.7, "init structure"): the loss first falls exponentially (no initial plateau)
    and then continues saddle to saddle for the remaining modes. The end-to-end map is
    $U_{:k}\,\mathrm{diag}(\mathrm{strength}^L)\,V_{:k}^\top$ plus a perturbation of order
    `noise`. The aligned part uses standard-basis hidden directions (the first `rank` units);
    a linear net is equivariant under hidden rotations, so this loses no generality.

    **Arguments:**

    - `model`: a `DeepLinear` matching the teacher (see `decoupled`).
    - `teacher`: a `LinearTeacher`, or a `Dataset` carrying one.
    - `rank`: number of top modes $k$ set to `strength`, `0 ≤ rank ≤ r`; the others get 0.
    - `strength`: per-layer strength $a_0$ of those modes (as in `decoupled`), a scalar or an
        array of length `rank`.
    - `noise`: per-entry standard deviation of the added noise, finite and `≥ 0`.
    - `key`: a `jax.random` key for the noise.

    **Returns:** a new `DeepLinear`.
    """
    model = _check_deep_linear(model)
    r = _resolve_teacher(teacher, model).rank
    rank = _rank(rank, r)
    _check_nonnegative(noise, "noise")
    strength = _per_mode(strength, rank, "strength") if rank > 0 else jnp.zeros((0,))
    a0 = jnp.concatenate([strength, jnp.zeros((r - rank,))]).astype(jnp.float64)
    aligned = decoupled(model, teacher, a0)
    perturbation = gaussian(aligned, noise, key=key)
    weights = _add(aligned.weights, perturbation.weights)
    return eqx.tree_at(lambda m: m.weights, aligned, weights)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _aligned_weights(u, v, a, hidden, width: int, depth: int) -> tuple[jax.Array, ...]:
    # W_1 = R_1 A Vᵀ, W_l = R_l A R_{l-1}ᵀ, W_L = U A R_{L-1}ᵀ; `hidden` holds Gaussian
    # matrices to orthonormalise into the R_l, or None for standard-basis columns.
    if depth == 1:
        return ((u * a) @ v.T,)
    r = a.shape[0]
    if hidden is None:
        rs = [basis_columns(width, r)] * (depth - 1)
    else:
        rs = [orthonormalise(g) for g in hidden]
    weights = [(rs[0] * a) @ v.T]
    weights += [(rs[i] * a) @ rs[i - 1].T for i in range(1, depth - 1)]
    weights += [(u * a) @ rs[-1].T]
    return tuple(weights)


@jax.jit
def _add(xs, ys):
    return jax.tree.map(jnp.add, xs, ys)


def _check_deep_linear(model) -> DeepLinear:
    if not isinstance(model, DeepLinear):
        raise TypeError(
            f"`model` must be a gf.models.DeepLinear for an aligned init, got "
            f"{type(model).__name__}; use `gaussian` for other model families."
        )
    return model


def _resolve_teacher(teacher, model: DeepLinear) -> LinearTeacher:
    if isinstance(teacher, Dataset):
        if teacher.teacher is None:
            raise ValueError(
                "`teacher` is a Dataset without a `teacher`; build it with "
                "`gf.data.linear_teacher(...)` or pass a `LinearTeacher`."
            )
        teacher = teacher.teacher
    if not isinstance(teacher, LinearTeacher):
        raise TypeError(
            f"`teacher` must be a LinearTeacher or a Dataset carrying one, got "
            f"{type(teacher).__name__}."
        )
    if teacher.v.shape[0] != model.in_size or teacher.u.shape[0] != model.out_size:
        raise ValueError(
            f"`teacher` maps {teacher.v.shape[0]} inputs to {teacher.u.shape[0]} outputs but "
            f"`model` has in_size={model.in_size}, out_size={model.out_size}; build them with "
            "the same sizes."
        )
    return teacher


def _per_mode(value, r: int, name: str) -> jax.Array:
    if is_tracing(value):
        a = jnp.asarray(value, dtype=jnp.float64)
    else:
        a = as_float64(value, name)
    if a.ndim == 0:
        return jnp.full((r,), a, dtype=jnp.float64)
    if a.shape != (r,):
        raise ValueError(
            f"`{name}` must be a scalar or have one entry per mode, shape ({r},); got shape "
            f"{a.shape}."
        )
    return a


def _rank(rank, r: int) -> int:
    if isinstance(rank, bool):
        raise TypeError(f"`rank` must be an integer, got {rank!r}.")
    try:
        rank = operator.index(rank)
    except TypeError:
        raise TypeError(f"`rank` must be an integer, got {type(rank).__name__}.") from None
    if not 0 <= rank <= r:
        raise ValueError(f"`rank` must be between 0 and the teacher's rank {r}, got {rank}.")
    return rank


def _check_finite(value, name: str) -> float:
    try:
        value = float(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a real number, got {value!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}.")
    return value


def _check_nonnegative(value, name: str) -> None:
    if is_tracing(value):
        return
    if _check_finite(value, name) < 0:
        raise ValueError(f"`{name}` is a standard deviation and must be ≥ 0, got {value}.")


# Schemes for the two-layer and attention families live in `init_extra` (they build on the
# functions above); re-exported here so that every init scheme is `gf.models.init.<name>`.
from .init_extra import balanced as balanced  # noqa: E402
from .init_extra import copy_unit as copy_unit  # noqa: E402
from .init_extra import frobenius as frobenius  # noqa: E402
from .init_extra import zero_unit as zero_unit  # noqa: E402
