"""Embedding: the exact flow of a Flax NNX model, split into graph and state.

`nnx.split(model, nnx.Param, ...)` separates the model into its graph definition, its
trainable parameters (an `nnx.State`, which is a pytree) and everything else (batch
statistics, RNG state, ...). `gf.solve_flow` integrates the flow of the parameters with a loss
that merges them back (`nnx.merge`); the final parameters are merged into a model again (or
written into the original one with `nnx.update`).

The model is a two-layer linear `nnx.Sequential` from a small init on a whitened linear
teacher (`gf.data.linear_teacher`), so the plateau levels and drop times can be checked
against the Saxe theory. NNX parameters default to float32: pass `param_dtype=jnp.float64`.

Run: `python examples/embed_flax_nnx.py [--out embed_flax_nnx.png]` (needs `pip install flax`,
part of the `test` extra).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import gradflow as gf


def make_model(in_size, width, out_size, init_scale, seed):
    init = nnx.initializers.normal(init_scale)  # i.i.d. N(0, init_scale²) entries
    rngs = nnx.Rngs(seed)
    layer = lambda i, o: nnx.Linear(
        i, o, use_bias=False, kernel_init=init, param_dtype=jnp.float64, rngs=rngs
    )
    return nnx.Sequential(layer(in_size, width), layer(width, out_size))


def loss_fn(params, args):
    """Half mean squared error of the merged model (the same loss as `gf.losses.mse`)."""
    graphdef, rest, x, y = args
    model = nnx.merge(graphdef, params, rest)
    return 0.5 * jnp.mean(jnp.sum((model(x) - y) ** 2, axis=-1))


def main(argv=None, *, width=8, init_scale=1e-6, t1=40.0, save_points=200, solver=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="embed_flax_nnx.png", help="figure path (png)")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)

    s = np.array([3.0, 2.0, 1.0])
    data = gf.data.linear_teacher(s, key=jax.random.key(0))
    model = make_model(s.size, width, s.size, init_scale, seed=1)

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # rest: empty here
    # nnx.Linear computes x @ kernel: the weights in the W x convention are the transposes
    w1 = np.array(params["layers"][0]["kernel"][...]).T
    w2 = np.array(params["layers"][1]["kernel"][...]).T
    sol = gf.solve_flow(
        loss_fn, params, (graphdef, rest, data.x, data.y), t1=t1, save=save_points,
        solver=solver,
    )  # fmt: skip
    print(sol)

    trained = nnx.merge(graphdef, sol.params, rest)  # a new model with the final parameters
    nnx.update(model, sol.params)  # or: write them into the original model in place
    final = float(loss_fn(nnx.state(model, nnx.Param), (graphdef, rest, data.x, data.y)))
    print(f"loss of the merged model {final:.3e} (flow's final loss {float(sol.loss[-1]):.3e})")

    u, v = np.asarray(data.teacher.u), np.asarray(data.teacher.v)
    drops = gf.theory.drop_times_random_init(s, w1, w2, u, v)
    table = gf.analysis.plateaus(sol, levels=gf.theory.plateau_levels(s), drops=drops)
    print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, ok = np.asarray(sol.t), np.asarray(sol.t) > 0
    u0 = gf.theory.random_init_u0(w1, w2, u, v)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t[ok], np.asarray(sol.loss)[ok], lw=2, label="Flax NNX state, gf.solve_flow")
    ax.plot(t[ok], gf.theory.saxe_loss(t[ok], s, u0), "k--", lw=1, label="Saxe theory")
    ax.set(xscale="log", xlabel="time", ylabel="loss", title="nnx.split → flow → nnx.merge")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {args.out}")
    return sol, table, trained, final


if __name__ == "__main__":
    main()
