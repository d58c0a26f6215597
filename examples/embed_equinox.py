"""Embedding: an equinox model that gradflow knows nothing about (`eqx.nn.MLP`), flow and GD.

Any equinox Module whose `__call__` takes one example works with `gf.flow`, `gf.gd` and
`gf.analysis.compare`, with the default loss `gf.losses.mse` (or your own `loss(model, data)`).
Here a tanh `eqx.nn.MLP` from a small init learns a linear teacher with singular values
(3, 2, 1): near the origin tanh is linear, so the loss is a staircase. GD at a few learning
rates is compared with the exact flow on the same time axis (t = k·lr): its drop times are
late by an amount proportional to lr (the fitted log–log slope is printed, theory 1).

Run: `python examples/embed_equinox.py [--out embed_equinox.png]`.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import numpy as np
import optax

import gradflow as gf


def make_mlp(in_size, width, out_size, init_scale, key):
    """A one-hidden-layer tanh MLP whose weights are rescaled to a small init."""
    mlp = eqx.nn.MLP(in_size, out_size, width, depth=1, activation=jax.nn.tanh, key=key)
    # eqx's default init is O(1/sqrt(fan_in)); scale every array (weights and biases) down
    return jax.tree.map(lambda x: init_scale * x if eqx.is_inexact_array(x) else x, mlp)


def main(argv=None, *, width=8, init_scale=1e-4, t1=20.0, lrs=(0.04, 0.02, 0.01),
         save_points=1000, solver=None):  # fmt: skip
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="embed_equinox.png", help="figure path (png)")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)

    s = np.array([3.0, 2.0, 1.0])
    data = gf.data.linear_teacher(s, key=jax.random.key(0))
    model = make_mlp(s.size, width, s.size, init_scale, jax.random.key(1))

    flow = gf.flow(model, data, t1=t1, save=save_points, solver=solver)
    print("flow:", flow)
    # transitions: the midpoints between the linear levels; drop times are interpolated
    # between save points, so the save grid is dense (else it dominates the slope)
    levels = gf.theory.drop_midpoints(s)
    runs, errors = {}, []
    for lr in lrs:
        run = gf.gd(model, data, optax.sgd(lr), t1=t1, save=save_points)
        cmp = gf.analysis.compare(flow, run, levels=levels)
        runs[lr] = run
        errors.append(float(np.nanmax(np.abs(cmp.time_error))))
        print(f"GD lr={lr:g}: {run}; drop times {np.round(cmp.run_times, 4)} vs flow "
              f"{np.round(cmp.flow_times, 4)}; max |Δt| = {errors[-1]:.3e}")  # fmt: skip
    slope = float(np.polyfit(np.log(lrs), np.log(errors), 1)[0]) if len(lrs) > 1 else np.nan
    print(f"max |t_GD − t_flow| ∝ lr^{slope:.3f} (theory: 1)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axe) = plt.subplots(1, 2, figsize=(9, 3.6))
    t, ok = np.asarray(flow.t), np.asarray(flow.t) > 0
    ax.plot(t[ok], np.asarray(flow.loss)[ok], "k", lw=2, label="exact flow")
    for lr, run in runs.items():
        tr, okr = np.asarray(run.t), np.asarray(run.t) > 0
        ax.plot(tr[okr], np.asarray(run.loss)[okr], ":", lw=1.5, label=f"GD lr={lr:g}")
    ax.set(xscale="log", xlabel="time (GD: k·lr)", ylabel="loss", title="eqx.nn.MLP (tanh)")
    ax.legend(fontsize=8)
    axe.loglog(lrs, errors, "o-", label=f"slope {slope:.2f}")
    axe.set(xlabel="learning rate", ylabel="max |drop-time difference|", title="GD vs flow")
    axe.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {args.out}")
    return flow, runs, np.asarray(errors), slope


if __name__ == "__main__":
    main()
