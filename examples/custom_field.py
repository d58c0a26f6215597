"""A user-defined vector field where `gf.GradientFlow()` goes: a layer-wise preconditioned flow.

`LayerwiseFlow(rates)` is θ̇_ℓ = −r_ℓ ∇_ℓ L: one rate per parameter array (per layer),
the continuous limit of GD with per-layer learning rates lr·r_ℓ. It is ten lines (subclass
`gf.AbstractField`, implement `__call__`) and everything else works unchanged: the adaptive
solver and save grid, a `stop_when` event, a `gf.sweep` over init scales, and the GD
comparison (GD with the same per-layer rates, `layerwise_sgd`, on the t = k·lr axis).

The prediction: for a two-layer linear net, W_ℓ = √r_ℓ A_ℓ turns the preconditioned flow into
the plain flow of ½ c² ‖S/c − A₂A₁‖² with c = √(r₁r₂), i.e. the plain flow on the teacher
S/c, run c² times faster, from the init (W₁/√r₁, W₂/√r₂). So the drop times are
`gf.theory.drop_times_random_init(s/c, W₁/√r₁, W₂/√r₂, u, v) / c²`: an unequal split of the
rates between the layers changes the effective init, not just the clock.

Run: `python examples/custom_field.py [--out custom_field.png]`.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradflow as gf


class LayerwiseFlow(gf.AbstractField):
    """θ̇_ℓ = −r_ℓ ∇_ℓ L, one rate r_ℓ > 0 per leaf of the parameters (in `jax.tree` order)."""

    # an array leaf, not static floats: other rates reuse the compiled solve (and can be vmapped)
    rates: jax.Array = eqx.field(converter=lambda r: jnp.asarray(r, dtype=float))
    grads_per_call = 1  # one gradient per evaluation, as GD: keeps num_grad_evals comparable

    def __call__(self, loss_fn, t, params, args):
        grads = jax.grad(loss_fn)(params, args)
        leaves, treedef = jax.tree.flatten(grads)
        if len(leaves) != self.rates.shape[0]:
            raise ValueError(
                f"LayerwiseFlow has {self.rates.shape[0]} rates but the parameters have "
                f"{len(leaves)} arrays; pass one rate per array."
            )
        return jax.tree.unflatten(treedef, [-r * g for r, g in zip(self.rates, leaves)])


def layerwise_sgd(lr, rates) -> optax.GradientTransformation:
    """GD with learning rate lr·r_ℓ for leaf ℓ: the discrete counterpart of LayerwiseFlow."""

    def update(updates, state, params=None):
        leaves, treedef = jax.tree.flatten(updates)
        return jax.tree.unflatten(treedef, [-lr * r * u for r, u in zip(rates, leaves)]), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def predicted_drops(s, model, data, rates):
    """Drop times of the layer-wise flow from the change of variables W_ℓ = √r_ℓ A_ℓ."""
    w1, w2 = (np.asarray(w) for w in model.weights)
    u, v = np.asarray(data.teacher.u), np.asarray(data.teacher.v)
    c = np.sqrt(rates[0] * rates[1])
    a1, a2 = w1 / np.sqrt(rates[0]), w2 / np.sqrt(rates[1])
    return gf.theory.drop_times_random_init(s / c, a1, a2, u, v) / c**2


def main(argv=None, *, width=8, init_scale=1e-6, rates=(4.0, 1.0), t1=20.0,
         tol=1e-8, sweep_scales=(1e-8, 1e-6, 1e-4), lrs=(0.01, 0.005), save_points=400,
         solver=None):  # fmt: skip
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="custom_field.png", help="figure path (png)")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)

    s = np.array([3.0, 2.0, 1.0])
    rates = np.asarray(rates, float)
    field = LayerwiseFlow(rates)

    def build(init_scale, seed):
        key_data, key_model = jax.random.split(jax.random.key(seed))
        data = gf.data.linear_teacher(s, key=key_data)
        return gf.models.DeepLinear(3, width, 3, 2, init_scale, key=key_model), data

    model, data = build(init_scale, 0)
    results = {}

    # 1. the solver, the save grid and a stop event: run with t1=inf until the loss is down
    #    to `tol` (the crossing is located by root finding); the plateau table against the
    #    change-of-variables theory
    loss = lambda m: gf.losses.mse(m, data)
    sol = gf.flow(model, data, t1=float("inf"), save=gf.log_grid(t1, save_points), field=field,
                  stop_when=lambda m: loss(m) - tol, solver=solver)  # fmt: skip
    drops = predicted_drops(s, model, data, rates)
    table = gf.analysis.plateaus(sol, levels=gf.theory.plateau_levels(s), drops=drops)
    print(f"layer-wise flow, rates {rates}, until L = {tol:g}: {sol}")
    print(table)
    results.update(sol=sol, table=table, predicted=drops)

    # 2. a sweep over init scales with the same field
    level = float(gf.theory.drop_midpoints(s)[0])
    grid = gf.Grid(init_scale=list(sweep_scales), seed=[0])
    ds = gf.sweep(build, grid, t1=t1, save=save_points, field=field, solver=solver)
    scales = ds.init_scale.values
    sweep_drop = np.array(
        [gf.analysis.first_crossing(ds.time, ds.loss.sel(init_scale=a, seed=0), level)
         for a in scales]
    )  # fmt: skip
    sweep_pred = np.array([predicted_drops(s, *build(a, 0), rates)[0] for a in scales])
    print("sweep: status", ds.status.values.ravel(), "first drop", np.round(sweep_drop, 4),
          "predicted", np.round(sweep_pred, 4))  # fmt: skip
    results.update(sweep=ds, sweep_drop=sweep_drop, sweep_predicted=sweep_pred)

    # 3. the GD comparison: GD with per-layer rates lr·r_ℓ, on the t = k·lr axis
    errors, runs = [], {}
    t_stop = float(sol.t_final)  # GD runs as long as the flow did
    for lr in lrs:
        run = gf.gd(model, data, layerwise_sgd(lr, rates), lr=lr, t1=t_stop, save=save_points)
        cmp = gf.analysis.compare(sol, run, levels=gf.theory.drop_midpoints(s))
        runs[lr] = run
        errors.append(float(np.nanmax(np.abs(cmp.time_error))))
        print(f"layer-wise GD lr={lr:g}: {run}; max |t_GD − t_flow| = {errors[-1]:.3e}")
    slope = float(np.polyfit(np.log(lrs), np.log(errors), 1)[0]) if len(lrs) > 1 else np.nan
    print(f"GD's drop-time error ∝ lr^{slope:.3f} (theory: 1)")
    results.update(runs=runs, gd_errors=np.asarray(errors), gd_slope=slope)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axs) = plt.subplots(1, 2, figsize=(9, 3.6))
    t, ok = np.asarray(sol.t), np.asarray(sol.t) > 0
    name = f"LayerwiseFlow({rates[0]:g}, {rates[1]:g})"
    ax.plot(t[ok], np.asarray(sol.loss)[ok], "k", lw=2, label=name)
    for lr, run in runs.items():
        tr, okr = np.asarray(run.t), np.asarray(run.t) > 0
        ax.plot(tr[okr], np.asarray(run.loss)[okr], ":", lw=1.5, label=f"layer-wise GD lr={lr:g}")
    for d in drops:
        ax.axvline(d, color="0.6", ls="--", lw=0.8)
    ax.plot([], [], color="0.6", ls="--", lw=0.8, label="predicted drops")
    ax.axvline(t_stop, color="C3", lw=0.8, label=f"stop_when: L = {tol:g}")
    ax.set(xscale="log", xlabel="time", ylabel="loss", title="a user-defined field")
    ax.legend(fontsize=7)
    tt = np.asarray(ds.time)
    for a in ds.init_scale.values:
        axs.plot(tt, ds.loss.sel(init_scale=a, seed=0), label=f"init {a:g}")
    axs.set(xscale="log", xlabel="time", title="gf.sweep(..., field=LayerwiseFlow(...))")
    axs.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
