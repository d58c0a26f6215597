"""Width × γ (Jacot et al.): the init variance σ² = w^(-γ) has a transition at γ = 1.

For γ > 1 the network starts near the saddle at the origin and the first plateau lasts
≈ ((γ − 1)·ln w + ln 2s_1)/(2 s_1) (`gf.theory.width_gamma_escape_time`), growing with the
width; for γ < 1 it starts past the saddle (no plateau, lazy regime). Each width is its own
shape group in `gf.sweep` (one compile per width); the figure puts the measured first escape
time beside the prediction.

    python examples/jacot_gamma.py --out width_gamma.png
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import gradflow as gf

S = (2.0, 1.0)


def main(argv=None, *, widths=(16, 64, 256), gammas=(0.5, 1.0, 1.5, 2.0), seeds=(0, 1),
         t1=20.0, save=150):  # fmt: skip
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="width_gamma.png")
    args = p.parse_args(argv)
    data = gf.data.linear_teacher(list(S), key=jax.random.key(1))

    def build(width, gamma, seed):
        model = gf.models.DeepLinear(2, width, 2, 2, 1.0, key=jax.random.key(seed))
        model = gf.models.init.width_scaled(model, gamma, key=jax.random.key(100 + seed))
        return model, data

    grid = gf.Grid(width=list(widths), gamma=list(gammas), seed=list(seeds))
    ds = gf.sweep(build, grid, t1=t1, save=save, name="jacot_gamma")
    from gradflow.plot import plot_width_gamma

    plot_width_gamma(ds, path=args.out, s1=S[0])
    esc = ds.first_escape_time.mean("seed")
    pred = gf.theory.width_gamma_escape_time(
        S[0], np.asarray(widths, float)[:, None], np.asarray(gammas, float)[None, :]
    )
    print("first escape time, measured (predicted); rows: width, columns: gamma")
    for i, w in enumerate(widths):
        cells = [f"{esc.values[i, j]:7.3f} ({pred[i, j]:6.3f})" for j in range(len(gammas))]
        print(f"{w:>5d} " + "  ".join(cells))
    print(f"wrote {args.out}")
    return ds, pred


if __name__ == "__main__":
    main()
