"""Figures of `gf.sweep` datasets: phase diagrams, the width × γ picture, loss curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _reduce(da, keep: tuple[str, ...]):
    """Mean over every dimension not in `keep` (e.g. seeds), ignoring nan."""
    other = [d for d in da.dims if d not in keep]
    return da.mean(dim=other, skipna=True) if other else da


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=110, format="png")
        plt.close(fig)
    return fig


def plot_phase(ds, path=None, x: str = "init_scale", y: str = "spectrum_exponent"):
    """Phase diagrams over `x` × `y` (other axes averaged): plateau count, first escape
    time and the final effective rank (if the sweep recorded a `rank` metric)."""
    panels = [("plateau_count", "plateaus"), ("first_escape_time", "first escape time")]
    if "final_rank" in ds:
        panels.append(("final_rank", "final effective rank"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    xs, ys = ds[x].values, ds[y].values
    for ax, (var, title) in zip(axes[0], panels):
        z = _reduce(ds[var].astype(float), (x, y)).transpose(y, x).values
        mesh = ax.pcolormesh(
            np.arange(xs.size + 1), np.arange(ys.size + 1), z, shading="flat", cmap="viridis"
        )
        fig.colorbar(mesh, ax=ax)
        ax.set_xticks(
            np.arange(xs.size) + 0.5,
            [f"{v:.0e}" if x == "init_scale" else f"{v:g}" for v in xs],
            rotation=45,
            fontsize=7,
        )
        ax.set_yticks(np.arange(ys.size) + 0.5, [f"{v:g}" for v in ys], fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_width_gamma(ds, path=None, s1: float | None = None):
    """Jacot et al.: first-plateau duration (first escape time) against width, one line per
    γ (σ² = width^-γ); the prediction `gf.theory.width_gamma_escape_time` dashed when the top
    singular value `s1` is known (argument or the `teacher_s1` attribute). Above γ = 1 the
    plateau grows like (γ − 1)·ln w; below it the net starts past the saddle."""
    from .. import theory

    s1 = ds.attrs.get("teacher_s1") if s1 is None else s1
    esc = _reduce(ds["first_escape_time"], ("width", "gamma"))
    widths = ds["width"].values.astype(float)
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    cmap = plt.get_cmap("coolwarm")
    gammas = ds["gamma"].values
    for j, g in enumerate(gammas):
        c = cmap(j / max(len(gammas) - 1, 1))
        ax.plot(widths, esc.sel(gamma=g).values, "o-", color=c, label=f"γ = {g:g}")
        if s1 is not None:
            pred = theory.width_gamma_escape_time(float(s1), widths, float(g))
            ok = np.asarray(pred) > 0
            ax.plot(widths[ok], np.asarray(pred)[ok], "--", color=c, lw=1)
    ax.set_xscale("log")
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("width w")
    ax.set_ylabel("first escape time (plateau duration)")
    ax.set_title("width × γ (σ² = w^-γ); dashed: theory", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_losses(ds, path=None):
    """Every member's loss curve on log–log axes, coloured along the first grid axis."""
    first = [d for d in ds["loss"].dims if d != "time"][0]
    fig, ax = plt.subplots(figsize=(5.8, 4.2))
    cmap = plt.get_cmap("viridis")
    n = ds.sizes[first]
    t = ds["time"].values
    for i in range(n):
        curves = ds["loss"].isel({first: i}).values.reshape(-1, t.size)
        for k, row in enumerate(curves):
            ok = np.isfinite(row) & (t > 0)
            label = f"{first} = {ds[first].values[i]:g}" if k == 0 else None
            ax.plot(t[ok], row[ok], color=cmap(i / max(n - 1, 1)), lw=0.9, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time t")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _save(fig, path)


def plot_sweep(ds, outdir) -> list[Path]:
    """All figures that apply to `ds`, as PNGs in `outdir`; returns their paths."""
    from .._io import atomic_write

    outdir = Path(outdir)
    made = []
    jobs = [("sweep_loss.png", plot_losses)]
    if "init_scale" in ds.dims and "spectrum_exponent" in ds.dims:
        jobs.append(("phase_diagram.png", plot_phase))
    if "width" in ds.dims and "gamma" in ds.dims:
        jobs.append(("width_gamma.png", plot_width_gamma))
    for name, fn in jobs:
        made.append(atomic_write(outdir / name, lambda tmp, fn=fn: fn(ds, path=tmp)))
    return made
