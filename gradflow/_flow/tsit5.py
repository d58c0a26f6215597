r"""Tsit5's step with its stages written out: `Auto`'s explicit mode.

diffrax runs the stages of a Runge–Kutta method in a loop (an `equinox.internal.while_loop`,
for variable stage counts and for autodiff of the triangular stage sums). On CPU, at the
sizes where a gradient costs a few microseconds, every iteration of that loop is a dozen
separate runtime operations. Written out, the loop goes, and so do the first-step and jump
checks of diffrax's FSAL bookkeeping: `Auto` keeps the slope $F(y_0)$ current in every mode
anyway (its stiff method's state), so the step takes it as an argument.

The tableau is diffrax's own (`diffrax.Tsit5.tableau`) and each stage sum is, as in diffrax,
one weighted sum over a buffer of the stages (diffrax weights the slopes and multiplies by
$h$; here the increments are weighted): a step agrees with `diffrax.Tsit5`'s to 1e-13
(`tests/test_tsit5.py`), and on every benchmark case `auto` takes the same steps as before.
Measured together with `Auto`'s stiffness check in its own `lax.cond` (paired medians of 20
interleaved calls against the version before both, 2 cores): 2-layer ReLU benchmark net
10–16% less wall time, 2-layer linear at init 1e-9 4–20%, attention 2–7%, quadratic net
0–3%; the 3-layer nets, mostly in stiff steps, −6% to +4% (noise).
"""

from __future__ import annotations

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np

_TABLEAU = dfx.Tsit5.tableau
_A = tuple(tuple(float(a) for a in row) for row in _TABLEAU.a_lower)
_C = tuple(float(c) for c in _TABLEAU.c)
_B_ERROR = tuple(float(e) for e in np.asarray(_TABLEAU.b_error))
# First same as last: the last stage is evaluated at the solution, so the solution weights
# are the last row of `a` and the step's end slope is its last stage.
assert _TABLEAU.fsal and np.allclose(_A[-1] + (0.0,), _TABLEAU.b_sol)


def _weighted(weights, ks):
    """`Σ_j weights[j] ks[j]` over the leading (stage) axis of `ks`, in its dtype."""
    return jnp.tensordot(jnp.asarray(weights, ks.dtype), ks, axes=1)


def tsit5_step(terms, t0, t1, y0, args, f0):
    r"""One Tsit5 step from $y_0$ with slope `f0` $= F(t_0, y_0)$.

    **Returns:** `(y1, err, f1, ks)`: the fifth-order solution, the embedded error estimate,
    the slope $F(t_1, y_1)$ (the next step's `f0`) and the stage increments
    $k_i = hF(Y_i)$ with a leading stage axis (diffrax's `dense_info["k"]`: the first is
    $hF(y_0)$, the last $hF(y_1)$).
    """
    h = t1 - t0
    # The increments go into one (7, ...) buffer per leaf, and each stage's argument is one
    # weighted sum over it. Written as separate sums instead, XLA fused each stage's sum into
    # every consumer of the stage argument (3-layer linear benchmark net: 8% slower than
    # diffrax's loop).
    ks = jax.tree.map(lambda f: jnp.zeros((7,) + f.shape, f.dtype).at[0].set(h * f), f0)
    y, f = y0, f0
    for i, (a, c) in enumerate(zip(_A, _C)):
        w = a + (0.0,) * (6 - len(a))
        y = jax.tree.map(lambda y_, k: y_ + _weighted(w, k[:6]), y0, ks)
        f = terms.vf(t0 + c * h, y, args)
        ks = jax.tree.map(lambda k, f_: k.at[i + 1].set(h * f_), ks, f)
    err = jax.tree.map(lambda k: _weighted(_B_ERROR, k), ks)
    return y, err, f, ks
