"""`gradflow sweep` / `gradflow plot` and the sweep examples, at tiny size."""

import importlib.util
import pathlib

import numpy as np
import pytest
import xarray as xr

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
