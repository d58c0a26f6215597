"""The figure of `gradflow run`: loss and effective rank against log time, theory dashed."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_run(ds, path=None):
    """Plot each network's flow, GD runs and theory; save to `path` if given, return the figure.

    Top row: loss on log–log axes (flow solid, GD dotted, theory curve dashed black where a
    closed form exists, predicted plateau levels as thin grey lines). Bottom row: effective
    rank (modes past half strength) against log time.
    """
    n = ds.sizes["network"]
    fig, axes = plt.subplots(2, n, figsize=(5.2 * n, 6.4), squeeze=False, sharex="col")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(n):
        d = ds.isel(network=i)
        ax, axr = axes[0, i], axes[1, i]
        for j, run in enumerate(d.run.values):
            r = d.sel(run=run)
            t, loss, rank = r.time.values, r.loss.values, r.effective_rank.values
            ok = np.isfinite(t) & (t > 0) & np.isfinite(loss)
            style = "-" if run == "flow" else ":"
            lw = 2.0 if run == "flow" else 1.6
            ax.plot(t[ok], loss[ok], style, color=colors[j % len(colors)], lw=lw, label=str(run))
            axr.plot(t[ok], rank[ok], style, color=colors[j % len(colors)], lw=lw)
        th_t, th = d.theory_time.values, d.theory_loss.values
        ok = np.isfinite(th_t) & (th_t > 0) & np.isfinite(th)
        if ok.any():
            ax.plot(th_t[ok], th[ok], "--", color="k", lw=1.2, label="theory (Saxe)")
        for lv in d.predicted_level.values:
            if lv > 0:
                ax.axhline(lv, color="0.6", lw=0.6, zorder=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(np.nanmin(d.loss.values[np.isfinite(d.loss.values)]), 1e-8) * 0.5)
        ax.set_title(
            f"depth {int(d.depth)}, width {int(d.width)}, init {float(d.init_scale):g}",
            fontsize=10,
        )
        ax.set_ylabel("loss")
        ax.legend(fontsize=8, loc="lower left")
        axr.set_xscale("log")
        axr.set_ylabel("effective rank")
        axr.set_xlabel("time t (GD: k·lr)")
        axr.set_yticks(range(ds.sizes["mode"] + 1))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)
    return fig
