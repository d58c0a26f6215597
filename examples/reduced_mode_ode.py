"""Embedding: your own reduced ODE as a "loss", checked against its closed form in `gf.theory`.

A deep linear network on whitened data with a balanced, decoupled init reduces to one scalar
ODE per teacher mode: the mode's strength is the product of its `depth` per-layer factors
a_1k ⋯ a_Lk, and the flow on the factors is the gradient flow of

    L(a) = ½ Σ_k (s_k − Π_i a_ik)²,

so `gf.solve_flow` integrates it directly (the parameters are one array of shape
(depth, modes)). With equal factors the strength m obeys ṁ = L m^{2−2/L}(s − m): the Saxe
sigmoid `gf.theory.saxe_mode` for depth 2, `gf.theory.depth_mode` for depth ≥ 3. The example
prints the largest deviation from the closed form and the half-times against
`gf.theory.saxe_half_time` / `gf.theory.depth_half_time`.

Run: `python examples/reduced_mode_ode.py [--out reduced_mode_ode.png]`.
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np

import gradflow as gf


def mode_loss(factors, s):
    """½ Σ_k (s_k − Π_i a_ik)²: the loss of a decoupled deep linear net, mode by mode."""
    return 0.5 * jnp.sum((s - jnp.prod(factors, axis=0)) ** 2)


def strengths(factors, s):
    """The mode strengths m_k = Π_i a_ik (a metric: it sees (params, args))."""
    return jnp.prod(factors, axis=0)


def closed_form(t, s, u0, depth):
    """Strength of every mode at the times `t` from gf.theory: shape (len(t), modes)."""
    t = np.asarray(t)[:, None]
    if depth == 2:
        return gf.theory.saxe_mode(t, s, u0)
    return gf.theory.depth_mode(t, s, u0, depth)


def half_times(s, u0, depth):
    if depth == 2:
        return gf.theory.saxe_half_time(s, u0)
    return gf.theory.depth_half_time(s, u0 ** (1.0 / depth), depth)  # per-layer a0


def main(argv=None, *, depths=(2, 3), s=(3.0, 2.0, 1.0), u0=1e-6, t1=None, save_points=200,
         rtol=1e-8, solver=None):  # fmt: skip
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reduced_mode_ode.png", help="figure path (png)")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)

    s = np.asarray(s, float)
    results = {}
    for depth in depths:
        # balanced init: every factor equal, so the strength starts at u0 exactly
        factors = jnp.full((depth, s.size), u0 ** (1.0 / depth))
        t_half = half_times(s, u0, depth)
        t_end = t1 if t1 is not None else 3.0 * float(np.max(t_half))
        sol = gf.solve_flow(
            mode_loss, factors, jnp.asarray(s), t1=t_end, save=save_points, rtol=rtol,
            metrics={"strength": strengths}, solver=solver,
        )  # fmt: skip
        t = np.asarray(sol.t)
        measured = np.asarray(sol.metrics["strength"])
        predicted = closed_form(t, s, u0, depth)
        err = float(np.max(np.abs(measured - predicted) / s))
        t_meas = np.array(
            [gf.analysis.first_crossing(t, -measured[:, k], -s[k] / 2) for k in range(s.size)]
        )
        rel = (t_meas - t_half) / t_half
        print(f"depth {depth}: {sol}")
        print(f"  max |m − m_theory| / s = {err:.2e}")
        print("  half-times (interpolated between saves)", np.round(t_meas, 5), "predicted",
              np.round(t_half, 5), "rel. err", np.array2string(rel, precision=2))  # fmt: skip
        results[depth] = dict(sol=sol, max_error=err, half_time=t_meas, predicted=t_half)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.6), squeeze=False)
    for ax, depth in zip(axes[0], depths):
        sol = results[depth]["sol"]
        t = np.asarray(sol.t)
        ok = t > 0
        m = np.asarray(sol.metrics["strength"])
        tt = np.geomspace(t[ok][0], t[-1], 400)
        pred = closed_form(tt, s, u0, depth)
        for k in range(s.size):
            ax.plot(t[ok], m[ok, k], lw=3, alpha=0.5, label=f"mode {k + 1} (flow)")
            ax.plot(tt, pred[:, k], "k--", lw=1)
        ax.set(xscale="log", xlabel="time", title=f"depth {depth}: flow vs closed form (--)")
    axes[0][0].set(ylabel="mode strength")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
