"""Init scale × data spectrum: a phase diagram of saddle-to-saddle dynamics.

A two-layer linear network learns a teacher with power-law singular values s_k = 4·k^(-a).
Smaller init scales σ give longer plateaus (the first escape takes ≈ ln(1/σ)/s_1); a steeper
spectrum (larger a) separates the modes, so more of them end as distinct plateaus. One
`gf.sweep` call runs the whole grid (cost-sorted chunks, one compile) and returns a labelled
dataset; the figure shows plateau count, first escape time and final effective rank.

    python examples/init_scale_sweep.py --out phase.png [--store sweep.zarr]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import gradflow as gf


def main(argv=None, *, n_scales=7, exponents=(0.5, 1.0, 2.0), seeds=(0,), modes=4, width=8,
         t1=60.0, save=120):  # fmt: skip
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="init_scale_sweep.png")
    p.add_argument("--store", default=None, help="resumable zarr store (optional)")
    args = p.parse_args(argv)

    def build(init_scale, spectrum_exponent, seed):
        key = jax.random.fold_in(jax.random.key(0), seed)
        k_data, k_model = jax.random.split(key)
        s = gf.data.power_law(modes, spectrum_exponent, scale=4.0)
        data = gf.data.linear_teacher(s, key=k_data)
        return gf.models.DeepLinear(modes, width, modes, 2, init_scale, key=k_model), data

    grid = gf.Grid(
        init_scale=np.geomspace(1e-8, 1e-2, n_scales), spectrum_exponent=list(exponents),
        seed=list(seeds),
    )  # fmt: skip
    ds = gf.sweep(build, grid, t1=t1, save=save, metrics={"rank": gf.analysis.effective_rank},
                  store=args.store, name="init_scale_sweep")  # fmt: skip
    from gradflow.plot import plot_phase

    plot_phase(ds, path=args.out)
    esc = ds.first_escape_time.mean("seed")
    print("first escape time (rows: spectrum exponent, columns: init scale)")
    print("      " + " ".join(f"{s:>8.0e}" for s in ds.init_scale.values))
    for a in ds.spectrum_exponent.values:
        print(f"{a:>5g} " + " ".join(f"{v:>8.3f}" for v in esc.sel(spectrum_exponent=a).values))
    print(f"statuses: {dict(zip(*np.unique(ds.status.values, return_counts=True)))}")
    print(f"wrote {args.out}")
    return ds


if __name__ == "__main__":
    main()
