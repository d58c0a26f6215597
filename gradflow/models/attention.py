r"""Multi-head attention on the in-context regression layout (THEORY.md §6).

One example is a sequence flattened row-major from the token matrix

$$Z = \begin{bmatrix} x_1 & \cdots & x_N & x_q \\ y_1 & \cdots & y_N & 0\end{bmatrix}
\in \mathbb R^{(D+1)\times(N+1)}$$

(see `gf.data.in_context_regression`), and the prediction is the bottom-right entry of
$Z + \sum_i W^V_i Z\,(Z^\top W^{K\top}_i W^Q_i Z)/N$. With the structural zeros of the ICL paper
(values read only $y$, keys and queries only $x$) that entry is

$$\hat y_q = \sum_i v_i\,\beta^\top U_i\,x_q,\qquad \beta = \tfrac1N\textstyle\sum_n y_n x_n,$$

which is what the linear models compute (only the non-zero blocks are parameters, so the
structural zeros stay zero exactly). Heads are the units.

- `MergedAttention` (ATTN_M): $U_i$ a free $D\times D$ matrix. A two-layer linear net on the
    cubic feature $\mathrm{vec}(\beta x_q^\top)$: two fixed points, one drop.
- `SeparateAttention` (ATTN_S): $U_i = K_i Q_i^\top$ with rank-$R$ factors. Heads are recruited
    one at a time, learning the eigenvectors of $\Lambda$ in order (saddle to saddle).
- `SoftmaxAttention`: $\hat y_q = \sum_i v_i \sum_n \mathrm{softmax}_n(x_n^\top K_i Q_i^\top
    x_q)\,y_n$ over the $N$ context tokens.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import positive_int as _positive_int
from ..data.sampling import normal_arrays
from ._checks import check_init_scale


def split_tokens(z: jax.Array, dim: int, name: str):
    """`(xs (N, D), ys (N,), x_q (D,))` from one flattened token matrix."""
    size = jnp.size(z)
    if jnp.ndim(z) != 1 or size % (dim + 1) or size // (dim + 1) < 2:
        raise ValueError(
            f"{name} acts on ONE flattened sequence: `x` must be 1-D with (dim+1)·(N+1) "
            f"entries, dim={dim}, N ≥ 1; got shape {jnp.shape(z)}. For a batch use "
            "`jax.vmap(model)(x)`."
        )
    tokens = jnp.reshape(z, (dim + 1, -1))
    return tokens[:dim, :-1].T, tokens[dim, :-1], tokens[:dim, -1]


class MergedAttention(eqx.Module):
    r"""Multi-head linear attention with merged key–query $U_i$ (ATTN_M).

    **Fields:** `value` `(num_heads,)`, `kq` `(num_heads, dim, dim)`; static `dim`,
    `num_heads`.
    """

    value: jax.Array
    kq: jax.Array
    dim: int = eqx.field(static=True)
    num_heads: int = eqx.field(static=True)

    UNIT_AXES: ClassVar[dict[str, int]] = {"value": 0, "kq": 0}

    def __init__(self, dim: int, num_heads: int, init_scale, *, key):
        """**Arguments:** `dim` ($D$), `num_heads` ($H$), `init_scale` (per-entry std of the
        i.i.d. Gaussian init; the ICL code's per-layer Frobenius init is
        `gf.models.init_extra.frobenius`), `key`."""
        self.dim = _positive_int(dim, "dim")
        self.num_heads = _positive_int(num_heads, "num_heads")
        check_init_scale(init_scale)
        h, d = self.num_heads, self.dim
        self.value, self.kq = normal_arrays(key, [(h,), (h, d, d)], init_scale)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Prediction $\\hat y_q$ for ONE flattened sequence; shape `(1,)`."""
        xs, ys, xq = split_tokens(x, self.dim, "MergedAttention")
        beta = xs.T @ ys / xs.shape[0]
        return (beta @ self.merged() @ xq)[None]

    def merged(self) -> jax.Array:
        r"""$A = \sum_i v_i U_i$, shape `(dim, dim)`: $\hat y_q = \beta^\top A x_q$."""
        return jnp.einsum("h,hij->ij", self.value, self.kq)

    def units(self) -> jax.Array:
        r"""Per-head norms $\sqrt{v_i^2 + \|U_i\|_F^2}$, shape `(num_heads,)`."""
        return jnp.sqrt(self.value**2 + jnp.sum(self.kq**2, axis=(1, 2)))


class SeparateAttention(eqx.Module):
    r"""Multi-head linear attention with separate rank-$R$ key and query (ATTN_S).

    **Fields:** `value` `(num_heads,)`, `wk`, `wq` `(num_heads, dim, rank)`; static `dim`,
    `num_heads`, `rank`.
    """

    value: jax.Array
    wk: jax.Array
    wq: jax.Array
    dim: int = eqx.field(static=True)
    num_heads: int = eqx.field(static=True)
    rank: int = eqx.field(static=True)

    UNIT_AXES: ClassVar[dict[str, int]] = {"value": 0, "wk": 0, "wq": 0}

    def __init__(self, dim: int, num_heads: int, rank: int = 1, init_scale=1e-3, *, key):
        """**Arguments:** `dim` ($D$), `num_heads` ($H$), `rank` ($R$), `init_scale`
        (per-entry std), `key`."""
        self.dim = _positive_int(dim, "dim")
        self.num_heads = _positive_int(num_heads, "num_heads")
        self.rank = _positive_int(rank, "rank")
        check_init_scale(init_scale)
        h, d, r = self.num_heads, self.dim, self.rank
        self.value, self.wk, self.wq = normal_arrays(key, [(h,), (h, d, r), (h, d, r)], init_scale)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Prediction $\\hat y_q$ for ONE flattened sequence; shape `(1,)`."""
        xs, ys, xq = split_tokens(x, self.dim, "SeparateAttention")
        beta = xs.T @ ys / xs.shape[0]
        return (beta @ self.merged() @ xq)[None]

    def merged(self) -> jax.Array:
        r"""$A = \sum_i v_i K_i Q_i^\top$, shape `(dim, dim)`: $\hat y_q = \beta^\top A x_q$."""
        return jnp.einsum("h,hir,hjr->ij", self.value, self.wk, self.wq)

    def units(self) -> jax.Array:
        r"""Per-head norms $\sqrt{v_i^2 + \|K_i\|_F^2 + \|Q_i\|_F^2}$, shape `(num_heads,)`."""
        return jnp.sqrt(
            self.value**2 + jnp.sum(self.wk**2, axis=(1, 2)) + jnp.sum(self.wq**2, axis=(1, 2))
        )


class SoftmaxAttention(eqx.Module):
    r"""Multi-head softmax attention, rank-$R$ key and query, value reading $y$.

    $\hat y_q = \sum_i v_i \sum_{n \le N} \mathrm{softmax}_n(x_n^\top K_i Q_i^\top x_q)\,y_n$.
    Unlike the linear heads, a zero head is not a fixed point (uniform attention averages
    the $y_n$), so there is no zero-unit manifold.

    **Fields:** as `SeparateAttention`.
    """

    value: jax.Array
    wk: jax.Array
    wq: jax.Array
    dim: int = eqx.field(static=True)
    num_heads: int = eqx.field(static=True)
    rank: int = eqx.field(static=True)

    UNIT_AXES: ClassVar[dict[str, int]] = {"value": 0, "wk": 0, "wq": 0}

    def __init__(self, dim: int, num_heads: int, rank: int = 1, init_scale=1e-3, *, key):
        """**Arguments:** as `SeparateAttention`."""
        self.dim = _positive_int(dim, "dim")
        self.num_heads = _positive_int(num_heads, "num_heads")
        self.rank = _positive_int(rank, "rank")
        check_init_scale(init_scale)
        h, d, r = self.num_heads, self.dim, self.rank
        self.value, self.wk, self.wq = normal_arrays(key, [(h,), (h, d, r), (h, d, r)], init_scale)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Prediction $\\hat y_q$ for ONE flattened sequence; shape `(1,)`."""
        xs, ys, xq = split_tokens(x, self.dim, "SoftmaxAttention")
        scores = jnp.einsum("nd,hdr,her,e->hn", xs, self.wk, self.wq, xq)
        return (self.value @ (jax.nn.softmax(scores, axis=-1) @ ys))[None]

    def units(self) -> jax.Array:
        r"""Per-head norms $\sqrt{v_i^2 + \|K_i\|_F^2 + \|Q_i\|_F^2}$, shape `(num_heads,)`."""
        return jnp.sqrt(
            self.value**2 + jnp.sum(self.wk**2, axis=(1, 2)) + jnp.sum(self.wq**2, axis=(1, 2))
        )
