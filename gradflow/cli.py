"""Command line: `gradflow run [CONFIG.toml] [--out DIR] [--force]`.

Builds objects from the config, calls the public API, writes results. Bad input (unknown or
ill-typed keys, out-of-range values, an existing output directory) is one readable line on
stderr and exit code 2, before any compute.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._config import ConfigError, RunConfig, dumps, load

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gradflow",
        description="Exact gradient flow of neural networks, with GD and theory beside it.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run an experiment (default: the embedded deep-linear staircase)",
        description=(
            "Run the main job: deep linear networks learning a teacher from small init; exact "
            "flow, GD at the configured learning rates, theory; prints the plateau table and "
            "writes results.nc, loss.png and the resolved config.toml into --out."
        ),
    )
    run.add_argument("config", nargs="?", help="TOML file; missing keys take the defaults")
    run.add_argument(
        "--out", default="gradflow-out", help="output directory (default: %(default)s)"
    )
    run.add_argument("--force", action="store_true", help="overwrite an existing output directory")
    run.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    return p


def _cmd_run(args) -> int:
    cfg = load(args.config) if args.config else RunConfig()
    if args.print_config:
        print(dumps(cfg), end="")
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        if not out.is_dir() or any(out.iterdir()):
            raise ConfigError(
                f"output directory {str(out)!r} already exists and is not empty; "
                "pass --force to overwrite it or choose another --out."
            )
    from . import _experiment, _io  # heavy imports only once the input is known to be good
    from .plot import plot_run

    tic = time.perf_counter()
    ds = _experiment.run_experiment(cfg, log=lambda m: print(m, flush=True))
    print(_experiment.plateau_report(ds))
    out.mkdir(parents=True, exist_ok=True)
    _io.write_netcdf(ds, out / "results.nc")
    _io.atomic_write(out / "loss.png", lambda tmp: plot_run(ds, path=tmp))
    _io.write_text(dumps(cfg), out / "config.toml")
    print(
        f"\nwrote {out / 'results.nc'}, {out / 'loss.png'}, {out / 'config.toml'} "
        f"({time.perf_counter() - tic:.1f} s)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args)
    except ConfigError as e:
        print(f"gradflow: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
