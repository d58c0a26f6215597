"""Faults that are data, not crashes: `not_stopped`, atomic writes, `--force`.

(`diverged`, `max_steps` and per-member failure in sweeps are in test_flow.py, test_gd.py and
test_sweep.py; resuming a killed sweep is in test_sweep_store.py.)
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import gradflow as gf
from gradflow import _io, cli
from gradflow._sweep import job


def _half_norm(p, args):
    return 0.5 * jnp.sum(p**2)


def _never_zero(p):
    return jnp.sum(p**2) + 1.0


def test_infinite_t1_without_crossing_is_not_stopped():
    """L = ½‖θ‖² settles at 0; the stop condition ‖θ‖² + 1 never changes sign."""
    kw = dict(t1=math.inf, save=5, stop_when=_never_zero, solver="tsit5", progress=False)
    sol = gf.solve_flow(_half_norm, jnp.ones(2), **kw)
    assert sol.status == "not_stopped"
    t_final = float(sol.t_final)
    assert 1.0 < t_final < 1e3  # ended when the flow settled, not at max_steps
    assert int(sol.stats["num_steps"]) < 1000
    assert float(sol.t[-1]) == t_final and np.all(np.isfinite(np.asarray(sol.loss)))
    assert float(sol.loss[-1]) < 1e-4  # settled at the minimum (exact: exp(-2t))
    with pytest.raises(RuntimeError, match="not_stopped"):  # same compiled solve
        gf.solve_flow(_half_norm, jnp.ones(2), throw=True, **kw)


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    path = tmp_path / "results.txt"
    _io.write_text("old", path)

    def crash(tmp):
        with open(tmp, "w") as f:
            f.write("half a fi")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(path, crash)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.txt"]  # no temporary left
    _io.write_text("new", path)
    assert path.read_text() == "new"


def test_sweep_force_replaces_existing_output(tmp_path, monkeypatch, capsys):
    """--force discards an existing --out (the solve is stubbed: this tests the CLI only)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("old")
    ds = xr.Dataset({"status": ("init_scale", np.array(["success"]))}, attrs={"num_chunks": 1})
    monkeypatch.setattr(job, "run_sweep", lambda cfg, store, **hosts: ds)
    assert cli.main(["sweep", "--out", str(out)]) == 2  # refused without --force
    assert (out / "notes.txt").exists()
    assert cli.main(["sweep", "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "sweep.nc"]
    assert "1 success" in capsys.readouterr().out
