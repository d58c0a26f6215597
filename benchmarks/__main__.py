"""`python -m benchmarks [--quick | --full] [--out FILE] [--cases NAME ...]`."""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import importlib.metadata
import os
import platform
import sys
import time
from pathlib import Path

import diffrax
import jax
import scipy

from . import common, report
from . import references as refs
from .deep_linear import CASES, run_case

DEFAULT_OUT = Path(__file__).parent / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="the quick cases (default; < 5 min on 2 cores)")  # fmt: skip
    g.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="all cases, including 3-layer σ = 1e-6 (long), and the width "
                        "sweep (benchmarks.width)")  # fmt: skip
    p.set_defaults(mode="quick")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output (default: %(default)s)")
    p.add_argument("--cases", nargs="*", default=None,
                   help="only cases whose name matches one of these glob patterns")  # fmt: skip
    p.add_argument(
        "--methods",
        nargs="*",
        default=None,
        help="only methods matching these globs (gradflow, diffrax_tsit5, "
        "diffrax_kvaerno5, scipy_lsoda, scipy_bdf, gd, torchdiffeq, progress)",
    )
    p.add_argument(
        "--t1",
        type=float,
        default=None,
        help="override every case's final time (smoke tests; targets meaningless)",
    )
    p.add_argument("--no-readme", action="store_true", help="do not rewrite README.md's table")
    p.add_argument(
        "--fresh-references",
        action="store_true",
        help="recompute the reference solutions instead of reading them from "
        "results/references.json (and rewrite their entries there)",
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    return p


def _torch_version():
    # from the installed metadata: importing torch for its version took ~3 s
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    cases = [c for c in CASES if args.mode in c.modes]
    if args.cases:
        cases = [c for c in cases if any(fnmatch.fnmatch(c.name, pat) for pat in args.cases)]
    if args.list or not cases:
        for c in CASES:
            print(
                f"{c.name:<12} {c.kind} depth {c.depth} σ={c.sigma:g} T={c.t1:g} modes={c.modes}"
            )
        return 0 if args.list else 2
    common.SLOW_S = 1.0 if args.mode == "quick" else 60.0
    start = time.perf_counter()
    records = []
    # the reference cache (`references.py`); smoke runs with --t1 neither read nor write it
    cache = None if args.t1 is not None else ({} if args.fresh_references else refs.load())

    def log(s):
        print(s, flush=True)

    for c in cases:
        if args.t1 is not None:
            c.t1 = args.t1
        records.append(run_case(c, args.mode, log=log, only=args.methods, cache=cache))
    if cache:
        refs.store({**refs.load(), **cache})
    result = {
        "meta": {
            "mode": args.mode,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "python": sys.version.split()[0], "jax": jax.__version__,
            "diffrax": diffrax.__version__, "scipy": scipy.__version__,
            "torch": _torch_version(), "t1_override": args.t1, "methods": args.methods,
            "total_s": time.perf_counter() - start,
        },
        "cases": records,
    }  # fmt: skip
    result["targets"] = report.targets(result)
    path = report.write_json(result, args.out)
    print(f"\nwrote {path} ({result['meta']['total_s']:.0f} s)")
    print(report.table(result))
    print()
    print(report.targets_md(result))
    if not args.no_readme:
        report.update_readme(result)
    if args.mode == "full" and not args.cases and args.t1 is None:
        # the width sweep (its own subprocesses, its own table): full mode only
        from . import width

        return width.main(["--no-readme"] if args.no_readme else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
