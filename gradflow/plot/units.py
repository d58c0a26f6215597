"""Unit pictures: the first-layer weights of a 2-D-input net as points or rays in the plane.

This is how the paper's animations show learning (THEORY.md §1.10): each hidden unit $j$ is
the point $w_j \\in \\mathbb R^2$, its readout $a_j$ sets the marker size (and its sign the
colour, for one output). From a small init the points sit in a tiny cloud; on each plateau
one more unit (Type III) or one more ray of aligned units (Type II, ReLU) has grown out of it.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _weights(model_or_w, a=None):
    """(w, a) as numpy arrays: `w` of shape (H, 2), `a` of shape (out, H) or None."""
    if hasattr(model_or_w, "w"):
        w, a = model_or_w.w, model_or_w.a
    else:
        w = model_or_w
    w = np.asarray(w, float)
    if w.ndim != 2 or w.shape[1] != 2:
        raise ValueError(
            f"Unit pictures need 2-D inputs: first-layer weights of shape (units, 2), got "
            f"{w.shape}. (For other input sizes project the weights first.)"
        )
    a = None if a is None else np.asarray(a, float).reshape(-1, w.shape[0])
    return w, a


def plot_units(model_or_w, a=None, *, ax=None, rays: bool = False, title: str | None = None):
    """Draw one net's first-layer weights as points (and optionally rays) in the plane.

    **Arguments:**

    - `model_or_w`: a model with fields `w` (shape `(units, 2)`) and `a` (readout, e.g. a
        `gf.models.TwoLayer` with `in_size=2`), or the array `w` itself.
    - `a`: the readout `(out, units)` when `model_or_w` is an array (optional).
    - `ax`: a matplotlib axes to draw into (default: a new figure).
    - `rays`: also draw each unit's ray from the origin (ReLU units are rays: the flow keeps
        proportional units proportional, THEORY.md §1.4).
    - `title`: axes title; the largest norm is appended (every picture is scaled to its own
        largest unit, since sizes grow by orders of magnitude).

    **Returns:** the axes.
    """
    w, a = _weights(model_or_w, a)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    norms = np.linalg.norm(w, axis=1)
    top = float(norms.max()) if norms.size and norms.max() > 0 else 1.0
    if a is None:
        size, color = np.full(w.shape[0], 20.0), "k"
    else:
        mag = np.linalg.norm(a, axis=0)
        size = 8.0 + 80.0 * mag / max(float(mag.max()), 1e-300)
        color = np.where(a[0] >= 0, "C3", "C0") if a.shape[0] == 1 else "k"
    if rays:
        for p in w:
            ax.plot([0.0, p[0]], [0.0, p[1]], color="0.6", lw=0.8, zorder=1)
    ax.scatter(w[:, 0], w[:, 1], s=size, c=color, zorder=2, edgecolors="none")
    lim = 1.15 * top
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axhline(0.0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0.0, color="0.85", lw=0.6, zorder=0)
    ax.tick_params(labelsize=6)
    label = f"max ‖w‖ = {top:.2g}"
    ax.set_title(label if title is None else f"{title}\n{label}", fontsize=7)
    return ax


def plot_unit_snapshots(sol, times, path=None, *, rays: bool = False, suptitle: str | None = None):
    """Unit pictures at several times of one flow, side by side.

    **Arguments:**

    - `sol`: a `FlowSolution` of a 2-D-input model run with `save_params=True` (its
        `trajectory` holds the weights at every save time).
    - `times`: the times to show; each picture is the nearest save.
    - `path`: save the figure there (PNG) and close it; otherwise return it open.
    - `rays`, `suptitle`: as in `plot_units`; `suptitle` titles the whole figure.

    **Returns:** the figure.
    """
    if getattr(sol, "trajectory", None) is None:
        raise ValueError(
            "plot_unit_snapshots needs the weights over time: run the flow with save_params=True."
        )
    traj = sol.trajectory
    t = np.asarray(sol.t)
    times = np.atleast_1d(np.asarray(times, float))
    n = times.size
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 2.7), squeeze=False)
    for ax, time in zip(axes[0], times):
        i = int(np.nanargmin(np.abs(t[: traj.w.shape[0]] - time)))
        plot_units(traj.w[i], traj.a[i], ax=ax, rays=rays, title=f"t = {t[i]:.3g}")
    if suptitle:
        fig.suptitle(suptitle, fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
