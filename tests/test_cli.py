"""`gradflow run`: a round trip on a tiny config, and bad input -> exit code 2 before compute.

The round-trip network uses init 1e-6 (not 1e-3) and 100 save points: at init 1e-3 the
plateaus of a 2-layer net with s = (3, 2, 1) are too short to be flat to 1 % (the exact Saxe
curve itself bottoms out ≈ 8 % below the 2.5 level), so the plateau-level check would test
the physics, not the program.
"""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import gradflow as gf
from gradflow import cli
from gradflow._config import RunConfig, load

TINY = """\
seed = 0
save_points = 100

[teacher]
singular_values = [3.0, 2.0, 1.0]
rotate = false

[[networks]]
depth = 2
width = 3
init_scale = 1e-6
t1 = 40.0

[gd]
runs = [{ lr = 0.05 }]
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = root / "tiny.toml"
    config.write_text(TINY)
    out = root / "out"
    code = cli.main(["run", str(config), "--out", str(out)])
    return code, config, out


def test_run_round_trip(tiny_run):
    code, config, out = tiny_run
    assert code == 0
    for name in ("results.nc", "loss.png", "config.toml"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    original = load(config)
    assert isinstance(original, RunConfig)
    assert original.networks[0].init_scale == 1e-6 and original.gd.runs[0].lr == 0.05
    assert load(out / "config.toml") == original
    with xr.open_dataset(out / "results.nc") as ds:
        for var in ("loss", "time", "plateau_level"):
            assert var in ds.data_vars
        assert load_from_text(ds.attrs["config"], out.parent) == original
        assert list(ds.run.values) == ["flow", "gd lr=0.05"]
        assert ds.sizes["network"] == 1 and ds.sizes["save"] >= 100
        assert list(ds.status.values[0]) == ["success", "success"]
        loss = ds.loss.sel(network=0, run="flow").values
        time = ds.time.sel(network=0, run="flow").values
        assert np.all(np.isfinite(loss)) and np.all(np.diff(time) > 0)
        np.testing.assert_allclose(time[-1], 40.0, rtol=1e-12)
        predicted = ds.predicted_level.values
        measured = ds.plateau_level.sel(network=0, run="flow").values
    expected = gf.theory.plateau_levels([3.0, 2.0, 1.0])
    np.testing.assert_allclose(predicted, expected, rtol=1e-14)
    nonzero = expected > 0
    np.testing.assert_allclose(measured[nonzero], expected[nonzero], rtol=1e-2)


def load_from_text(text, directory):
    path = directory / "from_attrs.toml"
    path.write_text(text)
    return load(path)


def test_existing_output_dir_needs_force(tiny_run, capsys):
    code, config, out = tiny_run
    assert code == 0
    capsys.readouterr()
    assert cli.main(["run", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and str(out) in err


BAD = [
    ("sed = 1\n", ["'sed'", "'seed'"]),
    ("[[networks]]\ndepth = 0\n", ["networks[0].depth", ">= 1"]),
    ('rtol = "x"\n', ["rtol", "number"]),
    ('solver = "rk45"\n', ["solver", "'rk45'", "tsit5"]),
]


@pytest.mark.parametrize("text, words", BAD, ids=["unknown-key", "depth-0", "rtol-str", "solver"])
def test_bad_config_exit_code_2(tmp_path, capsys, text, words):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = tmp_path / "out"
    assert cli.main(["run", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradflow: error:")
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()  # nothing was computed or written


def test_print_config_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "gradflow", "run", "--print-config"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "[teacher]" in proc.stdout and "solver" in proc.stdout
