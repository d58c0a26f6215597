r"""How complex is the learned function? One count per architecture (THEORY.md §9).

`complexity(model, data)` dispatches on the model family and returns a jittable count that
rises by one per saddle-to-saddle transition:

| family | measure | sizes thresholded |
|---|---|---|
| linear (`DeepLinear`, `MergedAttention`, ...) | numerical rank | singular values |
| ReLU: `TwoLayer`, `Conv1D` | rays of grown units; 1-D with bias: kinks $-b_j/w_j$ | unit norms |
| quadratic, xtanh, cubic; `Separate`/`SoftmaxAttention` | active units / heads | unit norms |
| tanh (`TwoLayer`) | $\sigma_1/\sigma_2$ of the first layer (a ratio, not a count) | — |
| `DiagonalLinear` | support size of $\beta$ | $|\beta_i|$ |
| `DeepReLU` | numerical rank of every weight matrix (a vector) | singular values |

`Conv2D` is measured exactly as `Conv1D` (linear: rank of `kernel_map()`; ReLU: rays).

**Thresholds.** A size $m_i$ counts when $m_i > \max(\mathrm{rel}\cdot\max_j m_j,\ \tau)$:
relative to the largest unit (default `rel = 0.1`) and absolute $\tau$. The absolute part is
what separates "grown" from "still at the init scale", so set it by one of

- `abs_`: $\tau$ itself, e.g. ten times the initial unit norm $\approx 10\,\varepsilon
    \sqrt{\text{fan-in} + \text{fan-out}}$;
- `reference=model0`: $\tau = $ `factor` × the largest size of `model0` (default ten times:
    "norm above 10ε" of THEORY.md §9, measured on the actual init);
- neither: $\tau = 0$ (relative only), except for `DiagonalLinear`, where the conserved
    $\alpha_i = \sqrt{(u_i^2 - v_i^2)/2}$ gives $\tau = $ `factor`$\cdot\max_i\alpha_i$
    ($|\beta_i|$ is $\approx\alpha^2$ before coordinate $i$ activates and $O(1)$ after; $\alpha$
    is their geometric middle when `factor = 1`).

Rays are clustered by cosine (units $j, k$ share a ray when the cosine of $(w_j, b_j)$ and
$(w_k, b_k)$ exceeds `cos`, default 0.99); kinks by position (closer than `kink_tol`, default
1e-2). Both use a greedy leader count: unit $j$ opens a new cluster when no earlier active unit
lies within tolerance. This is exact for clusters tighter than the tolerance and well separated
from each other, which is what the flow from a small init produces; it costs $O(H^2)$.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ..models import (
    Conv1D,
    Conv2D,
    DeepLinear,
    DeepReLU,
    DiagonalLinear,
    MergedAttention,
    SeparateAttention,
    SoftmaxAttention,
    TwoLayer,
)
from ..models._activations import UNIT_SPARSE

_REGISTRY: dict[type, tuple[Callable, Callable]] = {}


def register_complexity(cls: type, sizes: Callable, count: Callable) -> None:
    """Register a model family: `sizes(model)` (the magnitudes compared with the thresholds)
    and `count(model, data, threshold, *, cos, kink_tol)`."""
    _REGISTRY[cls] = (sizes, count)


def _lookup(model):
    for cls in type(model).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    names = ", ".join(sorted(c.__name__ for c in _REGISTRY))
    raise TypeError(
        f"No complexity measure for {type(model).__name__}; known families: {names}. "
        "Register one with gf.analysis.register_complexity(cls, sizes, count)."
    )


def complexity(
    model,
    data=None,
    *,
    rel: float = 0.1,
    abs_=None,
    reference=None,
    factor: float = 10.0,
    cos: float = 0.99,
    kink_tol: float = 1e-2,
) -> jax.Array:
    r"""The complexity of `model`'s function: rank, kinks, rays, active units or support.

    See the module docstring for the measure per family and the thresholds.

    **Arguments:**

    - `model`: a gradflow model.
    - `data`: optional dataset. For 1-D ReLU with bias only kinks strictly inside the data
        range $(\min x, \max x)$ count (kinks outside do not change the function on the
        data); other families ignore it.
    - `rel`: relative threshold, fraction of the largest size, in `[0, 1)`.
    - `abs_`: absolute threshold $\tau$ (overrides `reference`).
    - `reference`: a model of the same family (usually the init) setting
        $\tau = $ `factor` × its largest size.
    - `factor`: multiplier for `reference` (and for $\alpha$ of `DiagonalLinear`).
    - `cos`: cosine above which two ReLU units share a ray.
    - `kink_tol`: distance below which two 1-D kinks coincide.

    **Returns:** an integer scalar (a float ratio for tanh; an integer vector, one per weight
    matrix, for `DeepReLU`). Jittable: thresholds may be traced, sizes are static.
    """
    if not 0 <= rel < 1:
        raise ValueError(f"`rel` must be in [0, 1), got {rel}.")
    _, count = _lookup(model)
    threshold = _absolute(model, abs_, reference, factor)
    return count(model, data, threshold, rel=rel, cos=cos, kink_tol=kink_tol)


def complexity_metric(*, reference=None, **kwargs) -> Callable:
    """`complexity` as a metric `fn(model, data)` for `gf.flow(..., metrics=...)`.

    With `reference=model0` the absolute threshold is computed once, here, from the init
    (`factor` × its largest size), so the metric closes over floats only.

    **Example:**

    ```python
    sol = gf.flow(model, data, t1=200.0,
                  metrics={"units": gf.analysis.complexity_metric(reference=model)})
    ```
    """
    if reference is not None and kwargs.get("abs_") is None:
        factor = kwargs.get("factor", 10.0)
        kwargs["abs_"] = float(factor * _largest(reference))
    return functools.partial(_metric, **kwargs)


def _metric(model, data, **kwargs):
    return complexity(model, data, **kwargs)


def unit_sizes(model) -> jax.Array:
    """The magnitudes that `complexity` thresholds: unit norms, singular values or $|\\beta|$."""
    return _lookup(model)[0](model)


def _largest(model) -> jax.Array:
    return jnp.max(jnp.concatenate([jnp.ravel(s) for s in jax.tree.leaves(unit_sizes(model))]))


def _absolute(model, abs_, reference, factor):
    if abs_ is not None:
        return jnp.asarray(abs_, dtype=jnp.float64)
    if reference is not None:
        if type(reference) is not type(model):
            raise TypeError(
                f"`reference` must be the same family as `model` ({type(model).__name__}), "
                f"got {type(reference).__name__}."
            )
        return factor * _largest(reference)
    if isinstance(model, DiagonalLinear):
        return factor * jnp.nanmax(model.alpha())
    return jnp.asarray(0.0, dtype=jnp.float64)


def count_above(sizes, threshold, rel) -> jax.Array:
    """Number of entries above $\\max(\\mathrm{rel}\\cdot\\max, \\tau)$ (and above 0)."""
    return jnp.sum(active_mask(sizes, threshold, rel))


def active_mask(sizes, threshold, rel) -> jax.Array:
    cut = jnp.maximum(rel * jnp.max(sizes), threshold)
    return (sizes > cut) & (sizes > 0)


def numerical_rank(matrix, threshold, rel) -> jax.Array:
    """Number of singular values above the thresholds."""
    return count_above(jnp.linalg.svd(matrix, compute_uv=False), threshold, rel)


def cluster_count(similar, active) -> jax.Array:
    """Greedy leader count: active `j` opens a cluster unless an earlier active `k` is similar.

    `similar` is a symmetric boolean `(n, n)` matrix, `active` a boolean `(n,)` mask.
    """
    n = active.shape[0]
    earlier = jnp.tril(jnp.ones((n, n), dtype=bool), k=-1)
    joined = jnp.any(similar & earlier & active[None, :], axis=1)
    return jnp.sum(active & ~joined)


def ray_count(directions, active, cos) -> jax.Array:
    """Distinct rays among the rows of `directions` (active rows only), by cosine."""
    norms = jnp.linalg.norm(directions, axis=1)
    unit = directions / jnp.where(norms > 0, norms, 1.0)[:, None]
    return cluster_count(unit @ unit.T > cos, active & (norms > 0))


def kink_count(positions, active, kink_tol, lo=-jnp.inf, hi=jnp.inf) -> jax.Array:
    """Distinct kink positions (finite, inside `(lo, hi)`) among active units, by distance."""
    ok = active & jnp.isfinite(positions) & (positions > lo) & (positions < hi)
    p = jnp.sort(jnp.where(ok, positions, jnp.inf))
    finite = jnp.isfinite(p)
    new = jnp.concatenate([finite[:1], finite[1:] & (jnp.diff(p) > kink_tol)])
    return jnp.sum(new)


# ---- families ------------------------------------------------------------------------------


def _deep_linear_sizes(model):
    return jnp.linalg.svd(model.end_to_end(), compute_uv=False)


def _deep_linear(model, data, threshold, *, rel, **_):
    return numerical_rank(model.end_to_end(), threshold, rel)


def _two_layer_sizes(model):
    if model.activation == "linear" and not model.bias:
        return jnp.linalg.svd(model.end_to_end(), compute_uv=False)
    return model.units()


def _two_layer(model, data, threshold, *, rel, cos, kink_tol):
    act = model.activation
    if act == "linear" and not model.bias:
        return numerical_rank(model.end_to_end(), threshold, rel)
    if act == "tanh":
        if model.in_size < 2:
            raise ValueError("σ1/σ2 of the first layer needs in_size ≥ 2 for tanh.")
        s = jnp.linalg.svd(model.w, compute_uv=False)
        return s[0] / s[1]
    active = active_mask(model.units(), threshold, rel)
    if act == "relu" and model.bias and model.in_size == 1:
        w = model.w[:, 0]
        positions = -model.b / jnp.where(w != 0, w, jnp.nan)
        lo, hi = (-jnp.inf, jnp.inf) if data is None else (jnp.min(data.x), jnp.max(data.x))
        return kink_count(jnp.where(w != 0, positions, jnp.inf), active, kink_tol, lo, hi)
    if act in ("relu", "linear"):
        directions = model.w if model.b is None else jnp.column_stack([model.w, model.b])
        return ray_count(directions, active, cos)
    assert act in UNIT_SPARSE
    return jnp.sum(active)


def _diagonal_sizes(model):
    return jnp.abs(model.beta())


def _diagonal(model, data, threshold, *, rel, **_):
    return count_above(jnp.abs(model.beta()), threshold, rel)


def support(model: DiagonalLinear, *, rel: float = 0.1, abs_=None, factor: float = 10.0):
    r"""Signs of the support of $\beta$: $+1$, $-1$ on active coordinates, 0 elsewhere.

    Thresholds as in `complexity` (default $\tau = 10\max_i\alpha_i$; $|\beta_i|$ is
    $\approx\alpha^2$ before coordinate $i$ activates and $O(1)$ after).
    """
    threshold = _absolute(model, abs_, None, factor)
    beta = model.beta()
    return jnp.where(active_mask(jnp.abs(beta), threshold, rel), jnp.sign(beta), 0).astype(int)


def _conv_sizes(model):
    if model.activation == "linear":
        return jnp.linalg.svd(model.kernel_map(), compute_uv=False)
    return model.units()


def _conv(model, data, threshold, *, rel, cos, **_):
    act = model.activation
    if act == "linear":
        return numerical_rank(model.kernel_map(), threshold, rel)
    if act == "tanh":
        if min(model.kernels.shape) < 2:
            raise ValueError("σ1/σ2 of the kernels needs num_kernels, kernel_size ≥ 2.")
        s = jnp.linalg.svd(model.kernels, compute_uv=False)
        return s[0] / s[1]
    active = active_mask(model.units(), threshold, rel)
    if act == "relu":
        return ray_count(model.kernels, active, cos)
    return jnp.sum(active)


def _merged_sizes(model):
    return jnp.linalg.svd(model.merged(), compute_uv=False)


def _merged(model, data, threshold, *, rel, **_):
    return numerical_rank(model.merged(), threshold, rel)


def _heads(model, data, threshold, *, rel, **_):
    return count_above(model.units(), threshold, rel)


def _deep_relu_sizes(model):
    return model.layer_singular_values()


def _deep_relu(model, data, threshold, *, rel, **_):
    # one threshold for all layers, but `rel` relative to each layer's own top value
    return jnp.stack([count_above(s, threshold, rel) for s in model.layer_singular_values()])


def head_directions(model, *, basis=None) -> jax.Array:
    r"""$|e_d^\top A_i e_d|$-weights of each head on each eigenvector, shape `(heads, dim)`.

    For a linear-attention head $A_i = v_i K_i Q_i^\top$ (or $v_i U_i$), the entry
    $(i, d)$ is $|b_d^\top A_i b_d|$ with $b_d$ the columns of `basis` (default the standard
    basis, the eigenvectors of a diagonal $\Lambda$): which eigenvector each head has learned.
    """
    if isinstance(model, MergedAttention):
        per_head = model.value[:, None, None] * model.kq
    elif isinstance(model, SeparateAttention):
        per_head = jnp.einsum("h,hir,hjr->hij", model.value, model.wk, model.wq)
    else:
        raise TypeError(f"head_directions needs a linear-attention model, got {type(model)}.")
    b = jnp.eye(model.dim) if basis is None else jnp.asarray(basis)
    return jnp.abs(jnp.einsum("id,hij,jd->hd", b, per_head, b))


register_complexity(Conv1D, _conv_sizes, _conv)
register_complexity(Conv2D, _conv_sizes, _conv)  # same fields: kernels, readout, kernel_map
register_complexity(MergedAttention, _merged_sizes, _merged)
register_complexity(SeparateAttention, lambda m: m.units(), _heads)
register_complexity(SoftmaxAttention, lambda m: m.units(), _heads)
register_complexity(DeepReLU, _deep_relu_sizes, _deep_relu)
register_complexity(DeepLinear, _deep_linear_sizes, _deep_linear)
register_complexity(TwoLayer, _two_layer_sizes, _two_layer)
register_complexity(DiagonalLinear, _diagonal_sizes, _diagonal)
