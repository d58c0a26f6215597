"""`gradflow sweep` / `gradflow plot` and the sweep examples, at tiny size; SIGINT/SIGTERM."""

import importlib.util
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from test_sweep_store import STORE_PROBE

from gradflow.cli import main

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

CONFIG = """
name = "tiny"
save_points = 30
chunk_size = 2
[teacher]
singular_values = [3.0, 1.0]
[network]
width = 3
t1 = 20.0
[grid]
init_scale = [1e-6, 1e-3]
spectrum_exponent = [1.0, 2.0]
"""


def test_cli_sweep_round_trip_resume_and_plot(tmp_path, capsys):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(out)]) == 0
    ds = xr.open_dataset(out / "sweep.nc")
    assert dict(ds.sizes) == {"init_scale": 2, "spectrum_exponent": 2, "time": 30, "plateau": 8}
    assert (ds.status.values == "success").all() and ds.attrs["name"] == "tiny"
    assert xr.open_zarr(out / "store.zarr").done.values.all()
    assert "4 members (4 success), 2 chunks" in capsys.readouterr().out
    # the same command again resumes: nothing left to solve, same dataset
    assert main(["sweep", str(cfg), "--out", str(out)]) == 0
    xr.testing.assert_identical(xr.open_dataset(out / "sweep.nc").load(), ds.load())
    # a changed config on the same output is refused (exit 2) unless --force
    cfg.write_text(CONFIG.replace("t1 = 20.0", "t1 = 30.0"))
    assert main(["sweep", str(cfg), "--out", str(out)]) == 2
    assert "network" in capsys.readouterr().err
    assert main(["plot", str(out)]) == 0
    for name in ("phase_diagram.png", "sweep_loss.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[grid]\ninit_scal = [1e-3]", "Did you mean 'init_scale'"),
        ("[grid]\ninit_scale = []", "grid.init_scale is empty"),
        ("[grid]\ninit_scale = [-1.0]", "grid.init_scale[0] must be finite and > 0"),
        ("[grid]\nwidth = [0]", "grid.width[0] must be >= 1"),
        ("[grid]\ngamma = [1.0]\ninit_scale = [1e-3]", "keep one of them"),
        ("chunk_size = 0", "chunk_size must be >= 1"),
        ("chunk_sise = 4", "Did you mean 'chunk_size'"),
        ("[network]\ndepht = 2", "Did you mean 'depth'"),
    ],
)
def test_cli_sweep_bad_config_exits_2(tmp_path, capsys, text, fragment):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_cli_plot_needs_results(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "neither sweep.nc" in capsys.readouterr().err


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_init_scale_sweep(tmp_path):
    out = tmp_path / "phase.png"
    ds = _load("init_scale_sweep").main(
        ["--out", str(out)], n_scales=3, exponents=(1.0, 2.0), modes=3, width=3, t1=30.0,
        save=40,
    )  # fmt: skip
    assert out.stat().st_size > 0 and (ds.status.values == "success").all()
    esc = ds.first_escape_time.sel(seed=0).values  # (init_scale, exponent): smaller σ, later
    assert np.all(np.diff(esc, axis=0) < 0)


def test_example_jacot_gamma(tmp_path):
    out = tmp_path / "wg.png"
    ds, pred = _load("jacot_gamma").main(
        ["--out", str(out)], widths=(8, 32), gammas=(0.5, 2.0), seeds=(0,), t1=10.0, save=60
    )
    assert out.stat().st_size > 0
    esc = ds.first_escape_time.sel(seed=0)
    assert pred[1, 0] < 0 and np.isnan(esc.sel(gamma=0.5).values[1])  # γ < 1: no plateau
    above = esc.sel(gamma=2.0).values
    assert above[1] > above[0]  # γ > 1: the plateau grows with the width
    np.testing.assert_allclose(above, pred[:, 1], rtol=0.25)


# --------------------------------------------------------------------------------------------
# interruptions: SIGINT / SIGTERM exit cleanly, SIGKILL at random moments; all resume exactly

HARNESS = """
import sys, time
from gradflow import cli
from gradflow._sweep.store import ZarrStore

original = ZarrStore.write_chunk

def write_chunk(self, index, values):
    original(self, index, values)
    print("WROTE", index, flush=True)
    time.sleep(120)  # the signal arrives here, after the first chunk is complete

ZarrStore.write_chunk = write_chunk
cli.console(["sweep", sys.argv[1], "--out", sys.argv[2]])  # what `gradflow sweep` runs
"""


def child_env():
    """The child reuses this session's XLA cache (the parent compiled the same solve)."""
    import jax

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cache = jax.config.jax_compilation_cache_dir
    if cache:
        env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")  # fmt: skip
    return env


def _message(sig, out):
    return (
        f"gradflow: interrupted by {signal.Signals(sig).name}; 1 of 2 chunks kept in "
        f"{out / 'store.zarr'}; run the same command again to resume.\n"
    )


def _check_store_and_resume(cfg, out, ref):
    # the store is consistent: exactly the first chunk is done, no temporary file is left
    store = xr.open_zarr(out / "store.zarr")
    assert store.done.values.tolist() == [1, 1, 0, 0]
    assert not list((out / "store.zarr").rglob("*.partial")) and not (out / "sweep.nc").exists()
    # re-running the same command resumes to the dataset of the uninterrupted run
    assert main(["sweep", str(cfg), "--out", str(out)]) == 0
    xr.testing.assert_identical(
        xr.open_dataset(out / "sweep.nc").load(), xr.open_dataset(ref / "sweep.nc").load()
    )


SIGNALS = [signal.SIGINT, signal.SIGTERM]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_cli_sweep_signal_in_process_exits_cleanly_then_resumes(tmp_path, monkeypatch, capsys,
                                                                sig):  # fmt: skip
    """The signal is raised in this process right after the first chunk is stored."""
    from gradflow._sweep.store import ZarrStore

    cfg = tmp_path / "sweep.toml"
    cfg.write_text(CONFIG)
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "ref")]) == 0  # uninterrupted
    capsys.readouterr()
    original = ZarrStore.write_chunk

    def write_chunk(self, index, values):
        original(self, index, values)
        signal.raise_signal(sig)  # Python runs the handler at the next bytecode
        raise AssertionError("the signal handler did not interrupt the sweep")

    monkeypatch.setattr(ZarrStore, "write_chunk", write_chunk)
    out = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(out)]) == 128 + sig  # 130 / 143
    assert capsys.readouterr().err == _message(sig, out)  # one line, no traceback
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was removed
    _check_store_and_resume(cfg, out, tmp_path / "ref")


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_cli_sweep_signal_exits_cleanly_then_resumes_identically(tmp_path, sig):
    """A real `gradflow sweep` process gets the signal while it waits after chunk 0."""
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(CONFIG)
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "ref")]) == 0  # uninterrupted
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(cfg), str(out)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("WROTE 0"), line
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig  # 130 (Ctrl-C) / 143 (SIGTERM), as a shell reports
    assert err == _message(sig, out)  # one line, no traceback
    _check_store_and_resume(cfg, out, tmp_path / "ref")


RANDOM_HARNESS = (
    """
import sys, time
from gradflow import cli
"""
    + STORE_PROBE
    + """
cli.console(["sweep", sys.argv[1], "--out", sys.argv[2]])
"""
)


@pytest.mark.slow
def test_cli_sweep_signals_at_random_moments_then_resume_identically(tmp_path):
    """SIGINT or SIGTERM at seeded random moments: the first run's after a random delay from
    the store's opening (compiling or solving), the others' after a random delay from their
    first chunk write (sleeping, writing, solving, shutting down). Every run ends with a
    clean exit, and the store resumes to the same dataset."""
    import random

    cfg = tmp_path / "sweep.toml"
    cfg.write_text(CONFIG.replace("chunk_size = 2", "chunk_size = 1"))  # 4 chunks
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "ref")]) == 0  # uninterrupted
    out = tmp_path / "out"
    rng = random.Random(0)
    codes = []
    for _ in range(4):
        sig = rng.choice(SIGNALS)
        proc = subprocess.Popen(
            [sys.executable, "-c", RANDOM_HARNESS, str(cfg), str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
        )  # fmt: skip
        try:
            wait_for = "START" if not codes else "WRITING"
            while (line := proc.stdout.readline()) and not line.startswith(wait_for):
                pass
            time.sleep(rng.uniform(0.0, 1.0 if not codes else 0.8))
            proc.send_signal(sig)  # (if the sweep is already done: during its shutdown)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        codes.append(proc.returncode)
        if proc.returncode == 0:  # it had finished: a late signal is ignored
            assert err == ""
        else:
            assert proc.returncode == 128 + sig
            assert (
                err.startswith(f"gradflow: interrupted by {sig.name}; ") and err.count("\n") == 1
            )
        xr.open_zarr(out / "store.zarr")  # consistent after every run
    assert main(["sweep", str(cfg), "--out", str(out)]) == 0
    xr.testing.assert_identical(
        xr.open_dataset(out / "sweep.nc").load(), xr.open_dataset(tmp_path / "ref/sweep.nc").load()
    )
