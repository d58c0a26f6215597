"""Embedding: `gf.solve_flow` on a plain dict of arrays with a hand-written loss.

No gradflow model, no `gf.Dataset`: the parameters are a dict `{"w1": (D, H), "w2": (H, D)}`,
the data a tuple of arrays, the loss a function you write. The data are exactly whitened
(from `gf.data.linear_teacher`, then used as plain arrays), so the Saxe theory applies:
the measured plateau levels are checked against ½ Σ_{j>k} s_j² and the drop times against
the random-init prediction computed from the initial weights (`gf.theory`).

Run: `python examples/embed_pytree.py [--out embed_pytree.png]`.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import gradflow as gf


def loss_fn(params, args):
    """Half mean squared error of the two-layer linear net, rows as examples: x @ w1 @ w2."""
    x, y = args
    pred = x @ params["w1"] @ params["w2"]
    return 0.5 * jnp.mean(jnp.sum((pred - y) ** 2, axis=-1))


def main(argv=None, *, width=8, init_scale=1e-6, t1=40.0, save_points=200, solver=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="embed_pytree.png", help="figure path (png)")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)

    s = np.array([3.0, 2.0, 1.0])
    data = gf.data.linear_teacher(s, key=jax.random.key(0))  # whitened: Xᵀ X / P = I
    x, y = np.asarray(data.x), np.asarray(data.y)  # from here on, plain arrays
    u, v = np.asarray(data.teacher.u), np.asarray(data.teacher.v)  # Yᵀ X / P = U diag(s) Vᵀ
    k1, k2 = jax.random.split(jax.random.key(1))
    params = {
        "w1": init_scale * jax.random.normal(k1, (s.size, width)),
        "w2": init_scale * jax.random.normal(k2, (width, s.size)),
    }

    sol = gf.solve_flow(
        loss_fn, params, (jnp.asarray(x), jnp.asarray(y)), t1=t1, save=save_points, solver=solver
    )
    print(sol)
    print("final parameters:", {k: v.shape for k, v in sol.params.items()})

    w1, w2 = np.asarray(params["w1"]).T, np.asarray(params["w2"]).T  # the W x convention
    levels = gf.theory.plateau_levels(s)
    drops = gf.theory.drop_times_random_init(s, w1, w2, u, v)
    table = gf.analysis.plateaus(sol, levels=levels, drops=drops)
    print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, ok = np.asarray(sol.t), np.asarray(sol.t) > 0
    u0 = gf.theory.random_init_u0(w1, w2, u, v)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t[ok], np.asarray(sol.loss)[ok], lw=2, label="gf.solve_flow on a dict")
    ax.plot(t[ok], gf.theory.saxe_loss(t[ok], s, u0), "k--", lw=1, label="Saxe theory")
    for lv in levels:
        ax.axhline(lv, color="0.8", lw=0.8, zorder=0)
    ax.set(xscale="log", xlabel="time", ylabel="loss", title="a hand-written loss over a dict")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {args.out}")
    return sol, table


if __name__ == "__main__":
    main()
