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
    if ds.attrs.get("experiment", "deep_linear") != "deep_linear":
        return plot_comparison(ds, path)
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


def plot_comparison(ds, path=None):
    """The figure of the other experiment kinds: loss curves with the prediction, and errors.

    Left: the loss of every init scale against log time (divided by `time_scale`, e.g.
    ln(1/α) for diagonal networks), solid, with the predicted curve or staircase dashed in
    the same colour. Right: |relative error| of every table quantity against the init scale
    (log–log), which shows how the agreement improves as the init shrinks.
    """
    fig, (ax, axe) = plt.subplots(1, 2, figsize=(11, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(ds.sizes["init"]):
        d = ds.isel(init=i)
        c = colors[i % len(colors)]
        scale = float(d.time_scale)
        t, loss = d.time.values / scale, d.loss.values
        ok = np.isfinite(t) & (t > 0) & np.isfinite(loss)
        ax.plot(t[ok], loss[ok], "-", color=c, lw=2, label=f"init {float(d.init_scale):g}")
        tt, th = d.theory_time.values / scale, d.theory_loss.values
        ok = np.isfinite(tt) & (tt > 0) & np.isfinite(th)
        if ok.any():
            ax.plot(tt[ok], th[ok], "--", color=c, lw=1.2)
    ax.plot([], [], "--", color="k", lw=1.2, label="prediction")
    ax.set_xscale("log")
    ax.set_yscale("log")
    measured = ds.loss.values[np.isfinite(ds.loss.values) & (ds.loss.values > 0)]
    if measured.size:  # a predicted level of exactly 0 must not stretch the axis
        ax.set_ylim(bottom=max(measured.min(), 1e-30) * 0.5)
    xlabel = "t / ln(1/α)" if np.any(ds.time_scale.values != 1.0) else "time"
    ax.set(xlabel=xlabel, ylabel=ds.loss.attrs.get("long_name", "loss"))
    ax.legend(fontsize=8, loc="lower left")
    err = np.abs(ds.rel_error.values)
    scales = ds.init_scale.values
    for q in range(ds.sizes["quantity"]):
        e = err[:, q]
        ok = np.isfinite(e) & (e > 0)
        if ok.any():
            axe.plot(scales[ok], e[ok], "o-", lw=1, ms=4, label=str(ds.quantity.values[q]))
    axe.set_xscale("log")
    axe.set_yscale("log")
    axe.set(xlabel="init scale", ylabel="|relative error|")
    axe.legend(fontsize=6, loc="best")
    fig.suptitle(ds.attrs.get("title", ""), fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)
    return fig
