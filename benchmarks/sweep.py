"""Sweep benchmark: a 64-point init-scale sweep, cost-aware chunks vs one vmap vs a loop.

`python -m benchmarks.sweep [--devices 1 4] [--depth 2]` — a log-spaced grid of 64 init
scales in [1e-8, 1e-2] on a deep linear net (d = 8, width 8, s = (5, 4, 3, 2, 1)), solved
three ways in one run: `gf.sweep` with cost-sorted chunks of 16, `gf.sweep` as one naive vmap
(a single chunk of 64: lock-step until the slowest member ends), and a Python loop of 64
compiled `gf.flow` calls. Each is timed on its second call (compiled). "steps" is the sum of
member steps; "lock-step steps" what the vmapped loops actually execute (Σ over chunks of the
chunk's largest member count × its size). Runs with several host devices in a subprocess
(`XLA_FLAGS=--xla_force_host_platform_device_count=N`). Writes
`benchmarks/results/sweep.json` and the table in `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import update_section, write_json

HERE = Path(__file__).parent
OUT = HERE / "results" / "sweep.json"
MARKERS = ("<!-- sweep-table -->", "<!-- /sweep-table -->")


def _measure(depth: int, t1: float) -> dict:
    import jax
    import numpy as np

    import gradflow as gf

    s = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    data = gf.data.linear_teacher(s, in_size=8, out_size=8, key=jax.random.key(0))
    scales = np.geomspace(1e-8, 1e-2, 64)

    def build(init_scale):
        return gf.models.DeepLinear(8, 8, 8, depth, init_scale, key=jax.random.key(1)), data

    grid = gf.Grid(init_scale=scales)
    kw = dict(t1=t1, save=100, progress=False)
    rows = {}
    for name, chunk in (("sorted chunks of 16", 16), ("one naive vmap", 64)):
        gf.sweep(build, grid, chunk_size=chunk, **kw)  # compile
        tic = time.perf_counter()
        ds = gf.sweep(build, grid, chunk_size=chunk, **kw)
        wall = time.perf_counter() - tic
        steps = np.asarray(ds.num_steps.values).ravel()
        order = np.argsort(-np.log(scales), kind="stable")[::-1]  # execution order: costly first
        lock = sum(steps[order[i : i + chunk]].max() * len(order[i : i + chunk])
                   for i in range(0, steps.size, chunk))  # fmt: skip
        rows[name] = {"wall_s": wall, "steps": int(steps.sum()), "lockstep_steps": int(lock)}
    models = [build(float(a))[0] for a in scales]
    gf.flow(models[0], data, t1=t1, save=100, progress=False)  # compile
    tic = time.perf_counter()
    steps = [int(gf.flow(m, data, t1=t1, save=100, progress=False).stats["num_steps"])
             for m in models]  # fmt: skip
    wall = time.perf_counter() - tic
    rows["python loop of compiled flows"] = {
        "wall_s": wall, "steps": int(sum(steps)), "lockstep_steps": int(sum(steps)),
    }  # fmt: skip
    return {"devices": len(jax.devices()), "depth": depth, "t1": t1, "rows": rows}


def _table(results: list[dict]) -> str:
    lines = [
        "| devices | depth | method | wall (s) | × sorted chunks | steps | lock-step steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = r["rows"]["sorted chunks of 16"]["wall_s"]
        for name, row in r["rows"].items():
            lines.append(
                f"| {r['devices']} | {r['depth']} | {name} | {row['wall_s']:.3f} | "
                f"{row['wall_s'] / base:.2f} | {row['steps']:,} | {row['lockstep_steps']:,} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__)
    p.add_argument("--devices", type=int, nargs="*", default=[1, 4])
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--t1", type=float, default=60.0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-readme", action="store_true")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.depth, args.t1)))
        return 0
    results = []
    for n in args.devices:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        cmd = [sys.executable, "-m", "benchmarks.sweep", "--child", "--depth", str(args.depth),
               "--t1", str(args.t1)]  # fmt: skip
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=HERE.parent)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = _table(results)
    print(table)
    write_json(results, OUT)
    if not args.no_readme:
        intro = (
            "## Sweeps\n\n`python -m benchmarks.sweep`: 64 init scales in [1e-8, 1e-2], "
            "cost-sorted chunks vs one naive vmap vs a loop of compiled solves, on 1 and 4 "
            "host devices (one run; ratios within a row group)."
        )
        update_section(MARKERS, table, intro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
