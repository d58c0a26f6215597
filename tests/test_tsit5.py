"""`Auto`'s explicit mode: Tsit5 with its stages written out (`gradflow._flow.tsit5`)."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np

import gradflow as gf
from gradflow._flow.tsit5 import tsit5_step


def _field(t, y, args):
    # a nonlinear, non-autonomous field on a pytree (two leaves of different shapes)
    a, b = y["a"], y["b"]
    return {"a": -jnp.sin(a) * (1.0 + t) + jnp.sum(b), "b": -(b**3) + jnp.mean(a) * args}


def test_one_step_is_diffrax_tsit5():
    term = dfx.ODETerm(_field)
    y0 = {"a": jnp.linspace(-1.0, 2.0, 5), "b": jnp.array([[0.3, -0.7], [1.1, 0.2]])}
    t0, t1, args = 0.2, 0.45, 0.8
    solver = dfx.Tsit5()
    state = solver.init(term, t0, t1, y0, args)
    y1_ref, err_ref, dense_ref, state_ref, _ = solver.step(term, t0, t1, y0, args, state, False)
    y1, err, f1, ks = tsit5_step(term, t0, t1, y0, args, _field(t0, y0, args))
    for got, want in [(y1, y1_ref), (err, err_ref), (f1, state_ref[1]), (ks, dense_ref["k"])]:
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            assert g.shape == w.shape
            # the same tableau and stage sums; the last bits of rounding may differ
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


def test_auto_while_explicit_is_as_accurate_as_tsit5():
    # A 2-layer linear flow from init 1e-3, in its first transition at T = 3 and never stiff
    # before: `Auto` runs its written-out Tsit5 alone (its controller sees another error
    # order, so its steps are not `solver="tsit5"`'s), and both are as close to Dopri8 at
    # rtol 1e-12.
    data = gf.data.linear_teacher((2.0, 1.0), in_size=3, out_size=2, key=jax.random.key(0))
    model = gf.models.DeepLinear(3, 3, 2, 2, 1e-3, key=jax.random.key(1))
    kw = dict(t1=3.0, save=50, progress=False)
    auto = gf.flow(model, data, solver=gf.Auto(sliding=False), **kw)
    tsit5 = gf.flow(model, data, solver="tsit5", **kw)
    ref = gf.flow(model, data, solver="dopri8", rtol=1e-12, atol=1e-15, **kw)
    assert int(auto.stats["num_switches"]) == 0 and int(auto.stats["num_stiff_steps"]) == 0
    err = lambda s: float(np.max(np.abs(np.asarray(s.loss) / np.asarray(ref.loss) - 1)))
    assert err(auto) < 1e-5 and err(tsit5) < 1e-5
    assert int(auto.stats["num_steps"]) <= 2 * int(tsit5.stats["num_steps"])
