"""Command line: `gradflow run [CONFIG.toml | --preset NAME] [--out DIR] [--force]`,
`gradflow sweep CONFIG.toml --out DIR [--force]` and `gradflow plot DIR`.

Builds objects from the config, calls the public API, writes results. Bad input (unknown or
ill-typed keys, out-of-range values, an existing output directory) is one readable line on
stderr and exit code 2, before any compute.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from importlib.resources import as_file as resources_as_file
from pathlib import Path

import numpy as np

from ._config import ConfigError, RunConfig, dumps, load
from ._signals import Terminated, terminate_as_exit

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
    run.add_argument("--preset", help="run a shipped config by name instead (see --list-presets)")
    run.add_argument(
        "--list-presets", action="store_true", help="list the shipped configs and exit"
    )
    run.add_argument(
        "--out", default="gradflow-out", help="output directory (default: %(default)s)"
    )
    run.add_argument("--force", action="store_true", help="overwrite an existing output directory")
    run.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    sw = sub.add_parser(
        "sweep",
        help="sweep a grid of init scales, widths, spectra, seeds (resumable)",
        description=(
            "Run the exact flow for every point of the config's [grid] (deep linear nets on a "
            "linear teacher); writes sweep.nc, the resumable store.zarr and config.toml into "
            "--out. Re-running the same command resumes an interrupted sweep."
        ),
    )
    sw.add_argument("config", nargs="?", help="TOML file (default: the embedded sweep)")
    sw.add_argument("--out", default="gradflow-sweep", help="output directory (%(default)s)")
    sw.add_argument(
        "--force", action="store_true", help="discard an existing store or output in --out"
    )
    sw.add_argument("--print-config", action="store_true", help="print the resolved config")
    sw.add_argument("--coordinator", help="multi-process: coordinator address HOST:PORT")
    sw.add_argument("--num-processes", type=int, help="multi-process: number of processes")
    sw.add_argument("--process-id", type=int, help="multi-process: id of this process")
    sw.add_argument(
        "--distributed", action="store_true",
        help="multi-process with settings detected by jax (SLURM, TPU pods)",
    )  # fmt: skip
    pl = sub.add_parser(
        "plot",
        help="figures of a sweep (or run) output directory",
        description=(
            "Phase diagrams (plateau count, first escape time, final effective rank over "
            "init_scale × spectrum_exponent), the width × gamma picture and the loss curves, "
            "as PNGs next to DIR/sweep.nc; for a `gradflow run` directory, loss.png again."
        ),
    )
    pl.add_argument("dir", help="output directory of `gradflow sweep` or `gradflow run`")
    return p


def _cmd_sweep(args) -> int:
    from ._sweep import job

    cfg = job.load(args.config) if args.config else job.SweepConfig()
    if args.print_config:
        print(job.dumps(cfg), end="")
        return 0
    for flag in ("num_processes", "process_id"):
        v = getattr(args, flag)
        if v is not None and v < (1 if flag == "num_processes" else 0):
            raise ConfigError(f"--{flag.replace('_', '-')} out of range: {v}.")
    out = Path(args.out)
    store = out / "store.zarr"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if args.force:
            import shutil

            if args.process_id in (None, 0):
                shutil.rmtree(out) if out.is_dir() else out.unlink()
        elif not store.is_dir():
            raise ConfigError(
                f"output directory {str(out)!r} already exists and holds no sweep store; "
                "pass --force to overwrite it or choose another --out."
            )
    from . import _io
    from ._sweep import StoreError

    hosts = {
        "coordinator_address": args.coordinator,
        "num_processes": args.num_processes,
        "process_id": args.process_id,
        "distributed": args.distributed,
    }
    tic = time.perf_counter()
    try:
        ds = job.run_sweep(cfg, store=store, **hosts)
    except StoreError as e:
        raise ConfigError(f"{e}") from None
    except (KeyboardInterrupt, Terminated) as e:
        raise _Interrupted(e, f"{_chunks_done(store)} kept in {store}; run the same command "
                           "again to resume") from None  # fmt: skip
    if ds.attrs.get("num_pending", 0):
        print(f"process {args.process_id}: its chunks are in {store}; process 0 writes sweep.nc")
        return 0
    _io.write_netcdf(ds, out / "sweep.nc")
    _io.write_text(job.dumps(cfg), out / "config.toml")
    counts = dict(zip(*np.unique(ds.status.values, return_counts=True)))
    print(
        f"{int(ds.status.size)} members ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
        f"{ds.attrs['num_chunks']} chunks; wrote {out / 'sweep.nc'}, {store}, "
        f"{out / 'config.toml'} ({time.perf_counter() - tic:.1f} s)"
    )
    return 0


def _cmd_plot(args) -> int:
    d = Path(args.dir)
    if (d / "sweep.nc").is_file():
        import xarray as xr

        from .plot import plot_sweep

        with xr.open_dataset(d / "sweep.nc") as ds:
            paths = plot_sweep(ds.load(), d)
        print("wrote " + ", ".join(str(p) for p in paths))
        return 0
    if (d / "results.nc").is_file():
        import xarray as xr

        from . import _io
        from .plot import plot_run

        with xr.open_dataset(d / "results.nc") as ds:
            ds = ds.load()
        _io.atomic_write(d / "loss.png", lambda tmp: plot_run(ds, path=tmp))
        print(f"wrote {d / 'loss.png'}")
        return 0
    raise ConfigError(
        f"{str(d)!r} holds neither sweep.nc (gradflow sweep) nor results.nc (gradflow run)."
    )


def _presets() -> dict[str, str]:
    """Shipped configs (gradflow/configs/*.toml) by name, each with its one-line summary."""
    from importlib import resources

    out = {}
    for entry in sorted(resources.files("gradflow").joinpath("configs").iterdir(), key=str):
        if entry.name.endswith(".toml"):
            first = entry.read_text(encoding="utf-8").splitlines()[0]
            out[entry.name[: -len(".toml")]] = first.lstrip("# ").strip()
    return out


def _preset_path(name: str):
    from importlib import resources

    presets = _presets()
    if name not in presets:
        raise ConfigError(
            f"--preset {name!r} is unknown. Valid presets: {', '.join(presets)} "
            "(gradflow run --list-presets)."
        )
    return resources.files("gradflow").joinpath("configs", f"{name}.toml")


def _cmd_run(args) -> int:
    if args.list_presets:
        for name, summary in _presets().items():
            print(f"{name:<20} {summary}")
        return 0
    if args.preset and args.config:
        raise ConfigError("pass either a config file or --preset NAME, not both.")
    if args.preset:
        with resources_as_file(_preset_path(args.preset)) as path:
            cfg = load(path)
    else:
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
    log = lambda m: print(m, flush=True)
    if cfg.experiment == "deep_linear":
        ds = _experiment.run_experiment(cfg, log=log)
        print(_experiment.plateau_report(ds))
    else:
        from ._experiments import _common, kind_module

        ds = kind_module(cfg.experiment).run(cfg, log=log)
        print(_common.report(ds))
    out.mkdir(parents=True, exist_ok=True)
    _io.write_netcdf(ds, out / "results.nc")
    _io.atomic_write(out / "loss.png", lambda tmp: plot_run(ds, path=tmp))
    _io.write_text(dumps(cfg), out / "config.toml")
    print(
        f"\nwrote {out / 'results.nc'}, {out / 'loss.png'}, {out / 'config.toml'} "
        f"({time.perf_counter() - tic:.1f} s)"
    )
    return 0


class _Interrupted(Exception):
    """SIGINT/SIGTERM during a command, with what was kept."""

    def __init__(self, cause: BaseException, kept: str):
        self.code = 128 + signal.SIGINT if isinstance(cause, KeyboardInterrupt) else cause.code
        self.kept = kept


def _chunks_done(store: Path) -> str:
    try:
        import json

        import zarr

        size = json.loads((store / "gradflow_sweep.json").read_text())["chunk_size"]
        done = np.asarray(zarr.open_group(store, mode="r")["done"][:]).reshape(-1, size)
        return f"{int(done.all(axis=1).sum())} of {done.shape[0]} chunks"
    except Exception:  # noqa: BLE001  (nothing written yet, or unreadable: say less)
        return "the finished chunks are"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # SIGTERM (e.g. a preempted SLURM job) unwinds like Ctrl-C: one line, exit 128 + 15
        with terminate_as_exit():
            if args.command == "run":
                return _cmd_run(args)
            if args.command == "sweep":
                return _cmd_sweep(args)
            if args.command == "plot":
                return _cmd_plot(args)
    except ConfigError as e:
        print(f"gradflow: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated, _Interrupted) as e:
        if not isinstance(e, _Interrupted):
            e = _Interrupted(e, "the command did not finish (no file is left half-written)")
        name = signal.Signals(e.code - 128).name if e.code > 128 else "a signal"
        print(f"gradflow: interrupted by {name}; {e.kept}.", file=sys.stderr)
        return e.code
    return EXIT_USAGE  # pragma: no cover


def console(argv: list[str] | None = None) -> None:
    """The `gradflow` command: `main`, then exit with its code. Once the work is done,
    SIGINT/SIGTERM are ignored: a signal during interpreter shutdown (which can take seconds
    after jax) must not turn a finished command into a killed one (exit -2/-15, measured)."""
    code = main(argv)
    # SIG_IGN, not a Python handler: Python resets its own handlers to the default early in
    # finalization, but leaves ignored signals ignored
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
