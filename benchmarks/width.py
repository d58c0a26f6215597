"""Width sweep: the engine's cost per gradient against one raw `jax.grad`, and peak memory.

`python -m benchmarks.width [--widths 16 160 1600 16000] [--t1 2.0]` — a 2-layer linear net
`gf.models.DeepLinear(64, width, 64, 2, 1e-3)` on `gf.data.linear_teacher((5, 4, 3, 2, 1),
in_size=64, out_size=64)`, so P = 128·width parameters (2·10³ … 2·10⁶ at the default widths).
Each width runs in its own subprocess (so that its peak resident memory, `ru_maxrss`, is its
own) and measures: the best of 10 calls of one jitted raw gradient of the same loss; the
default `gf.flow` over [0, t1] (its second call, compiled) with its steps and gradient
evaluations; their ratio **flow time per gradient / raw gradient** (the engine's overhead per
gradient: 1.0 would be free stepping); and the peak RSS of the process. Writes
`benchmarks/results/width.json` and the table in `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import update_section, write_json

HERE = Path(__file__).parent
OUT = HERE / "results" / "width.json"
MARKERS = ("<!-- width-table -->", "<!-- /width-table -->")
D = 64


def _measure(width: int, t1: float) -> dict:
    import equinox as eqx
    import jax
    import numpy as np

    import gradflow as gf

    data = gf.data.linear_teacher([5.0, 4.0, 3.0, 2.0, 1.0], in_size=D, out_size=D,
                                  key=jax.random.key(0))  # fmt: skip
    model = gf.models.DeepLinear(D, width, D, 2, 1e-3, key=jax.random.key(1))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p):
        return gf.losses.mse(eqx.combine(p, static), data)

    grad = jax.jit(jax.grad(loss))
    jax.block_until_ready(grad(params))
    best = np.inf
    for _ in range(10):
        tic = time.perf_counter()
        jax.block_until_ready(grad(params))
        best = min(best, time.perf_counter() - tic)
    gf.flow(model, data, t1=t1, save=2, progress=False)  # compile
    tic = time.perf_counter()
    sol = gf.flow(model, data, t1=t1, save=2, progress=False)
    jax.block_until_ready(sol.loss)
    wall = time.perf_counter() - tic
    evals = int(sol.stats["num_grad_evals"]) + int(sol.stats["num_hvp_evals"])
    return {
        "width": width, "num_params": sum(x.size for x in jax.tree.leaves(params)),
        "grad_s": best, "flow_s": wall, "num_steps": int(sol.stats["num_steps"]),
        "num_grad_evals": int(sol.stats["num_grad_evals"]),
        "num_hvp_evals": int(sol.stats["num_hvp_evals"]),
        "per_eval_over_grad": wall / max(evals, 1) / best,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params_mb": 8 * sum(x.size for x in jax.tree.leaves(params)) / 2**20,
    }  # fmt: skip


def _table(rows: list[dict]) -> str:
    lines = [
        "| width | parameters | one jax.grad (ms) | flow (ms) | steps | grads + HVPs "
        "| flow time per evaluation / jax.grad | peak RSS (MB) | parameters (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['width']:,} | {r['num_params']:,} | {r['grad_s'] * 1e3:.3g} "
            f"| {r['flow_s'] * 1e3:,.1f} | {r['num_steps']:,} "
            f"| {r['num_grad_evals']:,} + {r['num_hvp_evals']:,} "
            f"| {r['per_eval_over_grad']:.2f} | {r['peak_rss_mb']:,.0f} | {r['params_mb']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.width", description=__doc__)
    p.add_argument("--widths", type=int, nargs="*", default=[16, 160, 1600, 16000])
    p.add_argument("--t1", type=float, default=10.0)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-readme", action="store_true")
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_measure(args.child, args.t1)))
        return 0
    rows = []
    for w in args.widths:
        cmd = [sys.executable, "-m", "benchmarks.width", "--child", str(w), "--t1", str(args.t1)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(_table(rows[-1:]).splitlines()[-1], flush=True)
    table = _table(rows)
    print(table)
    write_json({"t1": args.t1, "rows": rows}, OUT)
    if not args.no_readme:
        intro = (
            f"## Width sweep\n\n`python -m benchmarks.width`: a 2-layer linear net "
            f"(d = {D}, σ = 1e-3) over t ∈ [0, {args.t1:g}] at growing width, the default "
            "solver's time per gradient (or HVP) evaluation against one raw jitted "
            "`jax.grad`, and each width's peak resident memory (own process; includes "
            "JAX itself: ≈ 700 MB at the smallest width)."
        )
        update_section(MARKERS, table, intro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
