"""Saddle-to-saddle staircase of a two-layer linear network, with the Saxe theory beside it.

Run: `python examples/deep_linear_staircase.py [--out staircase.png]`. It prints the plateau
table (measured vs predicted levels and drop times), the mode half-times against the
random-init prediction of THEORY.md §1.9, and saves a figure of loss and mode strengths.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import gradflow as gf


def main(argv=None, *, width=16, init_scale=1e-6, t1=40.0, save_points=300):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="staircase.png", help="figure path (png)")
    args = parser.parse_args(argv)

    s = np.array([3.0, 2.0, 1.0])
    key_data, key_model = jax.random.split(jax.random.key(0))
    data = gf.data.linear_teacher(s, key=key_data)
    model = gf.models.DeepLinear(3, width, 3, depth=2, init_scale=init_scale, key=key_model)

    sol = gf.flow(
        model, data, t1=t1, save=save_points, metrics={"modes": gf.analysis.mode_strengths}
    )
    print(sol)

    w1, w2 = (np.asarray(w) for w in model.weights)
    u, v = np.asarray(data.teacher.u), np.asarray(data.teacher.v)
    drops = gf.theory.drop_times_random_init(s, w1, w2, u, v)
    table = gf.analysis.plateaus(sol, levels=gf.theory.plateau_levels(s), drops=drops)
    print(table)

    predicted = gf.theory.random_init_half_times(s, w1, w2, u, v)
    modes = np.asarray(sol.metrics["modes"])
    measured = np.array(
        [gf.analysis.first_crossing(sol.t, -modes[:, k], -s[k] / 2) for k in range(s.size)]
    )
    for k in range(s.size):
        err = (measured[k] - predicted[k]) / predicted[k]
        print(
            f"mode {k + 1}: half-time {measured[k]:.4f}, predicted {predicted[k]:.4f} ({err:+.2%})"
        )

    import matplotlib.pyplot as plt

    from gradflow.plot import run as _  # noqa: F401  (selects the Agg backend)

    t = np.asarray(sol.t)
    fig, (ax, axm) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    ok = t > 0
    u0 = gf.theory.random_init_u0(w1, w2, u, v)
    ax.plot(t[ok], np.asarray(sol.loss)[ok], lw=2, label="exact flow")
    ax.plot(t[ok], gf.theory.saxe_loss(t[ok], s, u0), "k--", lw=1, label="theory")
    ax.set(xscale="log", ylabel="loss")
    ax.legend()
    for k in range(s.size):
        axm.plot(t[ok], modes[ok, k], lw=2, label=f"mode {k + 1}")
        axm.plot(t[ok], gf.theory.saxe_mode(t[ok], s[k], u0[k]), "k--", lw=1)
    axm.set(xscale="log", xlabel="time", ylabel="mode strength")
    axm.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")
    return sol, table, measured, predicted


if __name__ == "__main__":
    main()
