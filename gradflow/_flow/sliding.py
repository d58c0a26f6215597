r"""Error control that is not fooled by a kink held at a data point (a Filippov sliding mode).

In a ReLU net a unit's pre-activation $z = w^\top x_k + b$ at a data point can be pushed
towards $0$ from both sides: the kink is held at $x_k$ and slides along it. The exact flow is
then a Filippov solution on the surface $\Sigma = \{z = 0\}$, and an explicit Runge–Kutta
step zigzags across $\Sigma$. Its embedded error estimate is $O(h\,|[F]|)$ — first order in
$h$, where $[F] = F^+ - F^-$ is the jump of the vector field — so a tight controller shrinks
the step until $h\,|[F]| \approx$ tol and rejects most steps (the chatter of PERFORMANCE.md).

For a gradient flow that error is harmless, for two reasons:

1. **The jump is normal to the kink.** $L$ is continuous across $\Sigma$ (only its gradient
   jumps), so its tangential derivatives agree on both sides and
   $[F] = -[\nabla L] \parallel n$, the normal of $\Sigma$. The tangential part of the field is
   continuous: the sliding motion is the common tangential part of $F^\pm$, and an explicit
   step's tangential increment is accurate to the usual order (up to the $O(h)$ distance of its
   stages from $\Sigma$).
2. **Normal errors do not accumulate.** In a sliding mode both sides push towards $\Sigma$
   ($n\cdot F^- > 0 > n\cdot F^+$ with $|n\cdot F^\pm|$ bounded away from 0), so a normal
   deviation is pulled back to $\Sigma$ in finite time: the zigzag has amplitude
   $O(h\,|n\cdot F|)$ and does not grow (full-batch GD zigzags across the kink in the same way).

So on a step that crosses an attracting kink we drop the error estimate's component along the
jump, and control the rest as usual. The step is recognised from its own stages, without
knowing the model: the stage slopes $k_i = hF(Y_i)$ jump between two values, and the field
*reverses* along the jump, $d\cdot k_0 < 0 < d\cdot k_{i^*}$ with $d = k_{i^*} - k_0$ the
largest stage difference. A smooth field reverses along $d$ only on an overshooting
stiff direction ($d\cdot k_{i^*} > 0$ needs $h c_{i^*} \lambda \gtrsim 1$ to first order).
The projection is therefore only used while $h\hat\rho <$ `max_h_rho` (default 2, with
$\hat\rho$ the spectral-radius estimate `Auto` keeps current): inside Tsit5's stability
interval ($|R(-h\lambda)| < 1$ up to $h\lambda \approx 3.5$), where an overshooting stiff
direction contracts and its error does not accumulate either; beyond it, dropping that error
could hide an instability. A kink crossed transversally (both sides move the same way) does
not reverse the field and keeps full error control, so crossing times stay accurate.

The jump is looked for in the tolerance-like scaling $|y_0| + |y_1|$ (so that a tiny unit's
kink is seen among large weights; it is removed from the error in that scaling), the reversal
is tested in the Euclidean metric (where the jump is normal to the kink). Measured on the
2-layer ReLU benchmark (`benchmarks/`, 1-D data, width 20, σ = 1e-3), with `Auto`'s default
error norm: 29,240 → 2,114 steps at atol = 1e-9 (final loss within 5e-9 of small-lr GD);
with the max norm, 952 → 441 steps at default tolerances and 180,592 → 4,233 at atol = 1e-9.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _flat(tree, lead: int = 0) -> jax.Array:
    """Concatenate the leaves (keeping `lead` leading axes): one vector op instead of many."""
    leaves = jax.tree.leaves(tree)
    return jnp.concatenate([jnp.reshape(x, x.shape[:lead] + (-1,)) for x in leaves], axis=-1)


def _unflat(vec, like):
    leaves, treedef = jax.tree.flatten(like)
    out, i = [], 0
    for x in leaves:
        out.append(jnp.reshape(vec[i : i + x.size], x.shape).astype(x.dtype))
        i += x.size
    return jax.tree.unflatten(treedef, out)


def project_kink_error(err, ks, y0, y1, h, rho, max_h_rho, directions=1):
    """Remove the error component along an attracting kink's jump (see the module docstring).

    **Arguments:**

    - `err`: the step's error estimate (a pytree like `y0`).
    - `ks`: the stage increments $k_i = hF(Y_i)$, leaves with a leading stage axis (Tsit5's
      `dense_info["k"]`, whose last stage is $hF(y_1)$).
    - `y0`, `y1`: the step's start and end.
    - `h`, `rho`: the step size and the spectral-radius estimate of the Jacobian.
    - `max_h_rho`: no projection when $h\\hat\\rho$ exceeds this.
    - `directions`: at most this many jump directions per step (several kinks crossed at
      once), found one after the other among the stage differences (Gram–Schmidt).

    **Returns:**

    `(err, n)`: the (possibly projected) error and the number of directions removed.
    """
    tiny = jnp.finfo(jnp.result_type(float)).tiny
    k = _flat(ks, lead=1)  # (stages, P)
    scale = jnp.abs(_flat(y0)) + jnp.abs(_flat(y1)) + tiny
    ok = jnp.abs(h) * rho < max_h_rho

    def direction(diffs):
        """The largest (scaled) stage difference, and whether the field reverses along it."""
        sq = jnp.sum(diffs * diffs, axis=1)
        i = jnp.argmax(sq)
        nd2, d = sq[i], diffs[i]
        # the reversal test in the Euclidean metric, where the jump is normal to the kink
        draw = d * scale
        slide = (nd2 > 0) & (jnp.dot(draw, k[0]) < 0) & (jnp.dot(draw, k[i + 1]) > 0)
        return d, 1.0 / jnp.where(nd2 > 0, nd2, 1.0), slide

    def project(_):
        diffs = (k[1:] - k[:1]) / scale
        et = _flat(err) / scale
        count = jnp.zeros((), jnp.int32)
        go = ok
        for _ in range(directions):
            d, inv, slide = direction(diffs)
            slide = go & slide
            inv = jnp.where(slide, inv, 0.0)
            et = et - (jnp.dot(et, d) * inv) * d
            # remove d from the remaining differences, so that the next direction is new
            diffs = diffs - (diffs @ d * inv)[:, None] * d[None]
            go = slide
            count = count + slide.astype(jnp.int32)
        return _unflat(et * scale, err), count

    # The first test alone is cheap (two passes over the stages); the projection, which
    # costs several more, runs only on steps that pass it (a few per cent on smooth flows).
    _, _, first = direction((k[1:] - k[:1]) / scale)
    return jax.lax.cond(ok & first, project, lambda _: (err, jnp.zeros((), jnp.int32)), None)
