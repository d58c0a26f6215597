"""The four effects of Zhang, Saxe & Latham's Fig. 2 (THEORY.md §1.7), each as a small figure.

- **width**: the first plateau of a Type III net (quadratic, exact Gaussian loss of
    y = xᵀ diag(2, -1) x) shortens with the width — more units, a larger largest initial unit
    (extreme values) — while a linear FC net's barely moves (Type I: separation between
    directions, width only through ln H). Widths share one compiled solve: a width-H net is the
    widest net with all but H units set to exactly zero, an invariant manifold (§1.4).
    Predicted: linear, the Saxe drop time of the top mode from each init's effective strength
    (`gf.theory.drop_times_random_init`); quadratic, the earliest blow-up time over units of the
    top-eigenvector reduction v̇ = λ₁(2v² + c), c = u₁² − 2v² conserved (closed form below).
- **spectrum**: power-law teachers s_k = 4·k^(−a): smaller a, smaller gaps, shorter plateaus;
    a = 0 leaves only the initial plateau. Predicted drop times from each init.
- **manifold**: large rank-2 weights on the top two modes plus noise of 1e-6 (near the rank-2
    invariant manifold, away from its saddle): the loss falls at once (no initial plateau), then
    plateaus with sigmoidal drops for the two remaining modes, at the times the noise predicts.
- **init_scale**: larger isotropic inits shorten the plateaus; at intermediate scales they are
    weak but the rank still grows one step at a time.

Run: `python examples/fig2_effects.py [--out DIR] [--tiny]`. Writes DIR/{width, spectrum,
manifold, init_scale}.png and prints a measured-vs-predicted table per effect. All solves use
Tsit5 (the solver is not the point here).
"""

from __future__ import annotations

import argparse
import pathlib
import time as _time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import gradflow as gf

SOLVER = "tsit5"
S = np.array([4.0, 2.0, 1.0, 0.5])  # the linear teacher of the width, manifold and scale panels
T_QUAD = np.diag([2.0, -1.0])  # Σ_yZ = tr(T) I + 2T = diag(5, -1)


def _linear(width, eps, seed=0, active=None):
    """Two-layer linear net 4 → width → 4; units ≥ `active` set to exactly zero."""
    model = gf.models.TwoLayer(4, width, 4, "linear", init_scale=eps, key=jax.random.key(seed))
    return _keep(model, active)


def _keep(model, active):
    if active is None or active >= model.width:
        return model
    return eqx.tree_at(
        lambda m: (m.w, m.a),
        model,
        (model.w.at[active:].set(0.0), model.a.at[:, active:].set(0.0)),
    )


def _teacher(s):
    return gf.data.linear_teacher(np.asarray(s, float), key=jax.random.key(0), rotate=False)


def _flow(model, data, t1, *, loss=gf.losses.mse, metrics=None):
    # every linear run has the same shapes (HMAX units, the unused ones exactly zero) and the
    # same metric, so all of them share one compiled solve
    if metrics is None and loss is gf.losses.mse:
        metrics = {"rank": gf.analysis.effective_rank}
    sol = gf.flow(
        model, data, loss=loss, t1=t1, solver=SOLVER, rtol=1e-8, metrics=metrics,
        progress=False,
    )  # fmt: skip
    if sol.status != "success":
        raise RuntimeError(f"flow ended with status {sol.status!r}")
    return sol


def _drops(sol, s):
    """Measured drop times (midpoint crossings between predicted levels) of a linear run."""
    return gf.analysis.plateaus(sol, levels=gf.theory.plateau_levels(s)).drop[: len(s)]


def plateau_durations(sol, s):
    """Time spent (in ln t) at each predicted level ½Σ_{j>k} s_j² (0 if never visited).

    Each level owns the band of losses between the midpoints to its neighbours
    (`gf.analysis.plateaus(levels=...)`); a drop that only passes through a band spends little
    log-time in it.
    """
    table = gf.analysis.plateaus(sol, levels=gf.theory.plateau_levels(s))
    return np.nan_to_num(np.log(table.end / table.start), nan=0.0)


def plateau_count(sol, s, min_duration=0.15):
    """Number of predicted levels where the loss rests for at least `min_duration` in ln t."""
    return int(np.sum(plateau_durations(sol, s) > min_duration))


def quadratic_blowup_times(w, a, lam=5.0):
    r"""Blow-up time of each quadratic unit in the top-eigenvector reduction.

    Near the origin $\dot v = u^\top\Sigma u$, $\dot u = 2v\,\Sigma u$ (THEORY.md §1.6). On the top
    eigenvector ($\lambda_1$) alone, $c = u_1^2 - 2v^2$ is conserved and
    $\dot v = \lambda_1(2v^2 + c)$, which blows up at

    - $c > 0$: $\frac{1}{\lambda_1\sqrt{2c}}\,[\pi/2 - \arctan(v_0\sqrt{2/c})]$;
    - $c < 0$, $v_0 > \sqrt{-c/2}$: $\frac{1}{2\lambda_1\sqrt{-2c}}
        \ln\frac{\sqrt2 v_0 + \sqrt{-c}}{\sqrt2 v_0 - \sqrt{-c}}$; otherwise never ($\infty$);
    - $c = 0$: $1/(2\lambda_1 v_0)$ (V5).

    Zero units never blow up.
    """
    u1, v = np.asarray(w)[:, 0], np.asarray(a)[0]
    c = u1**2 - 2 * v**2
    out = np.full(v.shape, np.inf)
    pos = c > 0
    out[pos] = (np.pi / 2 - np.arctan(v[pos] * np.sqrt(2 / c[pos]))) / (lam * np.sqrt(2 * c[pos]))
    neg = (c < 0) & (v > np.sqrt(np.maximum(-c, 0) / 2))
    r = np.sqrt(-c[neg])
    out[neg] = np.log((np.sqrt(2) * v[neg] + r) / (np.sqrt(2) * v[neg] - r)) / (
        2 * lam * np.sqrt(-2 * c[neg])
    )
    return out


# ---- the four effects ----------------------------------------------------------------------


def width_effect(widths, hmax, seeds, eps_lin=1e-6, eps_quad=1e-3):
    """First drop time against width (mean over seeds): linear FC (Type I), quadratic (III).

    Every width uses the first H units of the same widest init (per seed), so a wider net has
    a superset of the narrower one's units.
    """
    data = _teacher(S)
    rows, curves = [], {}
    for kind in ("linear", "quadratic"):
        for h in widths:
            measured, predicted = [], []
            for seed in seeds:
                if kind == "linear":
                    model = _linear(hmax, eps_lin, seed=seed, active=h)
                    sol = _flow(model, data, 30.0)
                    measured.append(_drops(sol, S)[0])
                    w, a = np.asarray(model.w), np.asarray(model.a)
                    predicted.append(gf.theory.drop_times_random_init(S, w, a)[0])
                else:
                    model = gf.models.TwoLayer(
                        2, hmax, 1, "quadratic", init_scale=eps_quad, key=jax.random.key(seed)
                    )
                    model = _keep(model, h)
                    sol = _flow(model, jnp.asarray(T_QUAD), 600.0,
                                loss=gf.data.quadratic_population_loss)  # fmt: skip
                    levels = [5.5, 4 / 3, 0.0]  # L0, the V5 saddle, zero
                    measured.append(gf.analysis.plateaus(sol, levels=levels).drop[0])
                    predicted.append(np.min(quadratic_blowup_times(model.w, model.a)))
                if seed == seeds[0]:
                    curves[(kind, h)] = sol
            rows.append((kind, h, float(np.mean(measured)), float(np.mean(predicted))))
    return rows, curves


def relative_shrink(rows, kind):
    """1 − (first drop at the largest width) / (first drop at the smallest), measured."""
    sel = [r[2] for r in rows if r[0] == kind]
    return 1.0 - sel[-1] / sel[0]


def spectrum_effect(exponents, hmax, width=16, eps=1e-6):
    """Span from the first to the last drop for power-law teachers s_k = 4 k^(-a)."""
    rows, curves = [], {}
    for a in exponents:
        s = gf.theory.power_law_spectrum(4, a, scale=4.0)
        model = _linear(hmax, eps, active=width)
        sol = _flow(model, _teacher(s), 80.0)
        pred = gf.theory.drop_times_random_init(s, np.asarray(model.w), np.asarray(model.a))
        count = plateau_count(sol, s)
        if a == 0:  # degenerate: one drop, measured as the midpoint crossing of L0 → 0
            drops = np.array([gf.analysis.plateaus(sol, levels=[0.5 * s @ s, 0.0]).drop[0]])
        else:
            drops = _drops(sol, s)
        rows.append((a, count, drops[-1] - drops[0], pred.max() - pred.min(), drops, pred))
        curves[a] = sol
    return rows, curves


def manifold_effect(hmax, width=16, strength=1.0, noise=1e-6, rank=2):
    """Large rank-2 weights on the top modes plus small noise, against a small isotropic init."""
    data = _teacher(S)
    iso = _linear(hmax, noise, active=width)
    # decoupled on the top `rank` modes (hidden units 0..rank-1 along e_k), plus the noise
    w = iso.w.at[jnp.arange(rank), jnp.arange(rank)].add(strength)
    a = iso.a.at[jnp.arange(rank), jnp.arange(rank)].add(strength)
    near = eqx.tree_at(lambda m: (m.w, m.a), iso, (w, a))
    out = {}
    for name, model in (("isotropic", iso), ("near rank-2 manifold", near)):
        sol = _flow(model, data, 60.0)
        pred = gf.theory.drop_times_random_init(S, np.asarray(model.w), np.asarray(model.a))
        out[name] = (sol, _drops(sol, S), pred)
    return out


def init_scale_effect(scales, hmax, width=16):
    """First drop, drop span, plateau count and the rank staircase against the init scale."""
    data = _teacher(S)
    rows, curves = [], {}
    for eps in scales:
        model = _linear(hmax, eps, active=width)
        sol = _flow(model, data, 60.0)
        pred = gf.theory.drop_times_random_init(S, np.asarray(model.w), np.asarray(model.a))
        rank = np.asarray(sol.metrics["rank"])
        steps = int(np.max(np.diff(rank))) if rank.size > 1 else 0
        count = plateau_count(sol, S)
        drops = _drops(sol, S)
        span, pred_span = drops[-1] - drops[0], pred[-1] - pred[0]
        rows.append((eps, count, drops[0], pred[0], span, pred_span, steps))
        curves[eps] = sol
    return rows, curves


# ---- figures -------------------------------------------------------------------------------


def _loss_axes(ax, curves, label, title):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    for i, (key, sol) in enumerate(curves):
        t, loss = np.asarray(sol.t), np.asarray(sol.loss)
        ok = t > 0
        ax.plot(t[ok], loss[ok] / loss[0], color=cmap(i / max(len(curves) - 1, 1)),
                label=f"{label}{key:g}")  # fmt: skip
    ax.set(xscale="log", xlabel="time", ylabel="loss / L(0)", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)


def _figures(out, width_res, spectrum_res, manifold_res, scale_res):
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from gradflow.plot import run as _  # noqa: F401  (selects the Agg backend)

    rows, curves = width_res
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, kind in zip(axes[:2], ("linear", "quadratic")):
        items = [(h, sol) for (k, h), sol in curves.items() if k == kind]
        _loss_axes(ax, items, "H = ", f"{kind}: loss against width")
    for kind, marker in (("linear", "o"), ("quadratic", "s")):
        hs = [r[1] for r in rows if r[0] == kind]
        axes[2].plot(hs, [r[2] for r in rows if r[0] == kind], marker, label=f"{kind} measured")
        axes[2].plot(hs, [r[3] for r in rows if r[0] == kind], "k--", lw=1)
    axes[2].set(xscale="log", yscale="log", xlabel="width H", ylabel="first drop time",
                title="first plateau (dashed: predicted)")  # fmt: skip
    hs = sorted({r[1] for r in rows})
    axes[2].set_xticks(hs, [str(h) for h in hs])
    axes[2].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[2].title.set_fontsize(9)
    axes[2].legend(fontsize=7)
    _save(fig, out / "width.png")

    rows, curves = spectrum_res
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    _loss_axes(axes[0], list(curves.items()), "a = ", "power-law teacher s_k = 4 k^-a")
    axes[1].plot([r[0] for r in rows], [r[2] for r in rows], "o", label="measured")
    axes[1].plot([r[0] for r in rows], [r[3] for r in rows], "k--", lw=1, label="predicted")
    axes[1].set(xlabel="exponent a", ylabel="last drop − first drop")
    axes[1].legend(fontsize=7)
    _save(fig, out / "spectrum.png")

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, (sol, _drops_measured, _pred) in manifold_res.items():
        t, loss = np.asarray(sol.t), np.asarray(sol.loss)
        ax.plot(t[t > 0], loss[t > 0], label=name)
    for p in manifold_res["near rank-2 manifold"][2][2:]:
        ax.axvline(p, color="k", ls=":", lw=0.8)
    ax.set_ylim(1e-3, 20)
    ax.set(xscale="log", yscale="log", xlabel="time", ylabel="loss",
           title="init near an invariant manifold (dotted: predicted drops)")  # fmt: skip
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    _save(fig, out / "manifold.png")

    rows, curves = scale_res
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    _loss_axes(axes[0], list(curves.items()), "ε = ", "isotropic init scale")
    for i, (eps, sol) in enumerate(curves.items()):
        t = np.asarray(sol.t)
        axes[1].step(t[t > 0], np.asarray(sol.metrics["rank"])[t > 0], where="post",
                     color=plt.get_cmap("viridis")(i / max(len(curves) - 1, 1)))  # fmt: skip
    axes[1].set(xscale="log", xlabel="time", ylabel="effective rank")
    _save(fig, out / "init_scale.png")


def _save(fig, path):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- main ----------------------------------------------------------------------------------


def main(argv=None, *, tiny=False):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="fig2_effects", help="figure directory")
    parser.add_argument("--tiny", action="store_true", help="small sizes (seconds)")
    args = parser.parse_args(argv)
    tiny = tiny or args.tiny
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = _time.perf_counter()

    widths = (4, 32) if tiny else (4, 8, 16, 32, 64)
    seeds = (0, 1, 2) if tiny else (0, 1, 2, 3, 4, 5)
    width_res = width_effect(widths, hmax=max(widths), seeds=seeds)
    print(f"width: first drop time, mean over {len(seeds)} seeds (measured vs predicted)")
    print(f"{'net':<10} {'H':>4} {'measured':>10} {'predicted':>10} {'rel.err':>8}")
    for kind, h, m, p in width_res[0]:
        print(f"{kind:<10} {h:>4} {m:>10.4g} {p:>10.4g} {(m - p) / p:>+8.2%}")
    for kind in ("linear", "quadratic"):
        shrink = relative_shrink(width_res[0], kind)
        print(
            f"{kind}: first plateau {shrink:.1%} shorter at H = {widths[-1]} than at {widths[0]}"
        )

    exponents = (0.0, 1.0) if tiny else (0.0, 0.5, 1.0, 2.0)
    hmax = max(widths)
    spectrum_res = spectrum_effect(exponents, hmax)
    print("\nspectrum: s_k = 4 k^-a; span = last drop - first drop")
    print(f"{'a':>4} {'plateaus':>8} {'span':>8} {'predicted':>10}  drops (measured / predicted)")
    for a, count, span, pspan, drops, pred in spectrum_res[0]:
        d = ", ".join(f"{x:.3g}" for x in drops)
        p = ", ".join(f"{x:.3g}" for x in pred)
        print(f"{a:>4g} {count:>8} {span:>8.3g} {pspan:>10.3g}  [{d}] / [{p}]")

    manifold_res = manifold_effect(hmax)
    print("\nmanifold: drop times of the four modes (measured / predicted)")
    for name, (sol, drops, pred) in manifold_res.items():
        d = ", ".join(f"{x:.3g}" for x in drops)
        p = ", ".join(f"{x:.3g}" for x in pred)
        print(f"{name:<22} loss(0) = {float(sol.loss[0]):.3g}  [{d}] / [{p}]")

    scales = (1e-8, 1e-2) if tiny else (1e-8, 1e-5, 1e-3, 1e-2, 3e-2, 1e-1)
    scale_res = init_scale_effect(scales, hmax)
    print("\ninit scale: first drop, span = last drop - first drop (measured / predicted "
          "by the independent-mode small-init formula, which fails at ε ≳ 0.03 where the modes "
          "interact), largest rank step between saves")  # fmt: skip
    for eps, _count, m, p, span, pspan, steps in scale_res[0]:
        print(f"ε = {eps:<7g} first drop {m:8.4g} / {p:8.4g}  span {span:7.4g} / {pspan:7.4g}  "
              f"step {steps}")  # fmt: skip

    _figures(out, width_res, spectrum_res, manifold_res, scale_res)
    seconds = _time.perf_counter() - start
    print(f"\nwrote width.png, spectrum.png, manifold.png, init_scale.png into {out}/ "
          f"({seconds:.0f} s)")  # fmt: skip
    return {
        "width": width_res[0], "spectrum": spectrum_res[0],
        "manifold": {k: (v[1], v[2], v[0]) for k, v in manifold_res.items()},
        "init_scale": scale_res[0], "seconds": seconds,
    }  # fmt: skip


if __name__ == "__main__":
    main()
