"""A rank staircase on real data: a linear net on scikit-learn's handwritten digits.

`gf.data.digits()` keeps four digit classes (3, 4, 8, 9), PCA-whitens the 8×8 images to 4
dimensions and centres one-hot targets (no download: scikit-learn ships the images). For
whitened inputs the flow of a two-layer linear net from a small init depends on the data only
through Σ_yx = U S Vᵀ, so it learns one singular mode per plateau: rank 0 → 1 → 2 → 3, on the
levels ½Σ_{j>k} s_j² + L_res (L_res: the least-squares residual, what no linear map can fit)
and at the drop times the Saxe sigmoid predicts from the init's effective strengths
(`gf.theory.drop_times_random_init`, THEORY.md §1.9). The spectrum of real data is not
designed: the singular values are 0.47, 0.36, 0.27, so the plateaus are short on log time
(ln 1.3 apart) but plain on linear time.

Run: `python examples/digits.py [--out DIR] [--tiny]`. Prints the plateau table (measured
vs predicted levels and drop times, the rank on each plateau) and writes DIR/digits.png.
"""

from __future__ import annotations

import argparse
import pathlib
import time as _time

import jax
import numpy as np

import gradflow as gf

TAU = 0.05  # a singular value of the end-to-end map counts once above this (s_3 = 0.27)


def main(argv=None, *, tiny=False):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="digits", help="figure directory")
    parser.add_argument("--tiny", action="store_true", help="small sizes (seconds)")
    args = parser.parse_args(argv)
    tiny = tiny or args.tiny
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = _time.perf_counter()

    data = gf.data.digits()
    s = np.asarray(data.teacher.s)
    y = np.asarray(data.y)
    residual = 0.5 * (np.mean(np.sum(y**2, axis=1)) - np.sum(s**2))
    width, eps = (16, 1e-12) if tiny else (32, 1e-12)
    p, dim = data.x.shape
    model = gf.models.TwoLayer(dim, width, y.shape[1], "linear", init_scale=eps,
                               key=jax.random.key(0))  # fmt: skip
    sol = gf.flow(
        model, data, t1=250.0, rtol=1e-8, solver="tsit5", progress=False,
        metrics={
            "rank": gf.analysis.complexity_metric(abs_=TAU),
            "modes": gf.analysis.mode_strengths,
        },
    )  # fmt: skip
    if sol.status != "success":
        raise RuntimeError(f"the flow ended with status {sol.status!r}")
    levels = gf.theory.plateau_levels(s, residual)
    u, v = np.asarray(data.teacher.u), np.asarray(data.teacher.v)
    pred = gf.theory.drop_times_random_init(s, np.asarray(model.w), np.asarray(model.a), u, v)
    table = gf.analysis.plateaus(sol, levels=levels, drops=pred)
    t, rank = np.asarray(sol.t), np.asarray(sol.metrics["rank"], float)
    on = [rank[(t >= a) & (t <= b)] for a, b in zip(table.start, table.end)]
    per_plateau = np.array([np.median(r) if r.size else np.nan for r in on])

    print(f"digits {gf.data.DIGITS_CLASSES}, {p} images, PCA-whitened to {dim} dims; "
          f"Σ_yx singular values {np.round(s, 4)}, L_res = {residual:.5f}")  # fmt: skip
    print(f"two-layer linear net, width {width}, init {eps:g}")
    print(table)
    print("rank on each plateau:", ", ".join(f"{r:g}" for r in per_plateau),
          f"(final {rank[-1]:g}, teacher {len(s)})")  # fmt: skip
    _figure(out / "digits.png", sol, levels, pred, s)
    seconds = _time.perf_counter() - start
    print(f"wrote {out}/digits.png ({seconds:.0f} s)")
    return {"sol": sol, "table": table, "plateau_rank": per_plateau, "final": rank[-1],
            "expected": len(s), "levels": levels, "predicted_drops": pred}  # fmt: skip


def _figure(path, sol, levels, pred, s):
    import matplotlib.pyplot as plt

    from gradflow.plot import run as _  # noqa: F401  (selects the Agg backend)

    t = np.asarray(sol.t)
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})  # fmt: skip
    ax.plot(t, np.asarray(sol.loss), lw=2, label="exact flow")
    for lv in levels:
        ax.axhline(lv, color="0.6", lw=0.7, ls="--")
    for p in pred:
        ax.axvline(p, color="k", lw=0.7, ls=":")
    ax.set(ylabel="loss", title="linear net on digits (3, 4, 8, 9): predicted levels (dashed), "
           "drops (dotted)")  # fmt: skip
    ax.title.set_fontsize(8)
    modes = np.asarray(sol.metrics["modes"])
    for k in range(modes.shape[1]):
        axr.plot(t, modes[:, k] / s[k], lw=1, label=f"mode {k + 1} / s_{k + 1}")
    axr.step(t, np.asarray(sol.metrics["rank"]), where="post", color="C3", lw=2, label="rank")
    axr.set(xlabel="time", ylabel="rank, mode strengths")
    axr.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
