"""Bad input, one table: configs of `gradflow run` / `gradflow sweep` and Python API arguments.

Every row is (kind, input, expected outcome, message fragment):

- `run` / `sweep`: the TOML text of a config file, passed to `gradflow.cli.main`; expected
  exit code 2 with ONE line on stderr (`gradflow: error: ...`), no traceback, nothing written.
- `out`: a function preparing an existing `--out` and returning the argv; same expectations.
- `api`: a call; expected exception type (message contains the fragment), or `None` for
  documented conversions (the call returns a value whose `str` contains the fragment).

All rows fail before any solve is compiled, so the table costs a few seconds.
"""

import functools
import math

import jax
import numpy as np
import pytest

import gradflow as gf
from gradflow import cli

KEY = jax.random.key(0)


@functools.cache
def _data():
    return gf.data.linear_teacher([3.0, 2.0, 1.0], key=KEY, rotate=False)


def _model(in_size=3):
    return gf.models.DeepLinear(in_size, 4, 3, 2, 1e-3, key=KEY)


def _flow(**kw):
    return lambda: gf.flow(_model(kw.pop("in_size", 3)), _data(), **{"t1": 1.0, **kw})


def _dataset(x, y):
    return lambda: gf.data.Dataset(np.asarray(x), np.asarray(y))


def _dtypes(x, y):
    def call():
        d = gf.data.Dataset(x, y)
        return f"{d.x.dtype} {d.y.dtype}"

    return call


def _run_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.nc").write_text("an earlier run")
    return ["run", "--out", str(out)]


def _sweep_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not a sweep")
    return ["sweep", "--out", str(out)]


def _preset_unknown(tmp_path):
    return ["run", "--preset", "diagonl", "--out", str(tmp_path / "out")]


def _preset_and_config(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('experiment = "diagonal"\n')
    return ["run", str(config), "--preset", "diagonal", "--out", str(tmp_path / "out")]


def _sweep_foreign_store(tmp_path):
    store = tmp_path / "out" / "store.zarr"
    store.mkdir(parents=True)
    (store / "data.csv").write_text("someone else's store")
    config = tmp_path / "small.toml"
    config.write_text("[grid]\ninit_scale = [1e-3]\n[network]\nwidth = 2\n")
    return ["sweep", str(config), "--out", str(tmp_path / "out")]


R = pytest.param
EXIT = 2

# fmt: off
ROWS = [
    # ---- gradflow run: unknown keys, with the closest valid key --------------------------
    R("run", "sed = 1", EXIT, "unknown key 'sed'. Did you mean 'seed'?", id="run-unknown"),
    R("run", "[teacher]\nrotat = true", EXIT, "Did you mean 'rotate'?", id="run-unknown-nested"),
    R("run", "[[networks]]\nwidht = 4", EXIT, "Did you mean 'width'?", id="run-unknown-list"),
    # ---- wrong types ---------------------------------------------------------------------
    R("run", 'seed = "one"', EXIT, "seed must be an integer, got str 'one'", id="run-type-int"),
    R("run", 'rtol = "x"', EXIT, "rtol must be a number", id="run-type-float"),
    R("run", "rtol = true", EXIT, "rtol must be a number, got bool", id="run-type-bool"),
    R("run", "[[networks]]\nwidth = 1.5", EXIT, "networks[0].width must be an integer",
      id="run-type-width"),
    R("run", "[teacher]\nrotate = 1", EXIT, "teacher.rotate must be true or false",
      id="run-type-rotate"),
    R("run", "teacher = 3", EXIT, "teacher must be a table", id="run-type-table"),
    R("run", "[teacher]\nsingular_values = 2.0", EXIT, "singular_values must be a list",
      id="run-type-list"),
    # ---- out-of-range values -------------------------------------------------------------
    R("run", "[[networks]]\ninit_scale = 0.0", EXIT,
      "networks[0].init_scale must be finite and > 0", id="run-init-zero"),
    R("run", "[[networks]]\ninit_scale = -1e-3", EXIT, "init_scale must be finite and > 0",
      id="run-init-negative"),
    R("run", "[[networks]]\ninit_scale = nan", EXIT, "init_scale must be finite and > 0",
      id="run-init-nan"),
    R("run", "[[networks]]\ninit_scale = inf", EXIT, "init_scale must be finite and > 0",
      id="run-init-inf"),
    R("run", "[[networks]]\nt1 = 0.0", EXIT, "networks[0].t1 must be finite and > 0",
      id="run-t1-zero"),
    R("run", "[[networks]]\nt1 = -5.0", EXIT, "t1 must be finite and > 0", id="run-t1-neg"),
    R("run", "[[networks]]\nwidth = 0", EXIT, "networks[0].width must be >= 1",
      id="run-width-0"),
    R("run", "[[networks]]\ndepth = 0", EXIT, "networks[0].depth must be >= 1",
      id="run-depth-0"),
    R("run", "rtol = 0.0", EXIT, "rtol must be finite and > 0", id="run-rtol-0"),
    R("run", "atol = -1e-9", EXIT, "atol must be finite and > 0", id="run-atol-neg"),
    R("run", "save_points = 1", EXIT, "save_points must be >= 2", id="run-save-points"),
    R("run", "max_steps = 0", EXIT, "max_steps must be >= 1", id="run-max-steps"),
    R("run", "seed = -1", EXIT, "seed must be an integer in [0, 2**32)", id="run-seed-neg"),
    R("run", "[teacher]\nsingular_values = []", EXIT, "at least one singular value",
      id="run-empty-spectrum"),
    R("run", "[teacher]\nsingular_values = [1.0, -2.0]", EXIT,
      "teacher.singular_values must be finite and > 0", id="run-negative-s"),
    R("run", "[teacher]\nin_size = 2", EXIT, "teacher.in_size = 2 is smaller than the 4",
      id="run-in-size"),
    R("run", "networks = []", EXIT, "at least one [[networks]]", id="run-no-networks"),
    R("run", "[[gd.runs]]\nlr = 0.0", EXIT, "gd.runs[0].lr must be finite and > 0",
      id="run-lr-0"),
    R("run", "[[gd.runs]]\nmomentum = 1.0", EXIT, "momentum must be in [0, 1)",
      id="run-momentum"),
    R("run", "[[gd.runs]]\nbatch_size = 0", EXIT, "batch_size must be >= 1", id="run-batch"),
    # ---- unknown names list the valid ones -----------------------------------------------
    R("run", 'solver = "rk45"', EXIT, "Valid names: auto, bosh3, dopri5, dopri8",
      id="run-solver"),
    R("run", '[[gd.runs]]\noptimizer = "adamw"', EXIT,
      "'adamw' is unknown. Valid optimizers: sgd, momentum, nesterov, adam",
      id="run-optimizer"),
    # ---- gradflow run: experiment kinds and presets --------------------------------------
    R("run", 'experiment = "diagnal"', EXIT, "experiment = 'diagnal' is unknown. Did you mean "
      "'diagonal'? Valid: deep_linear, diagonal, quadratic", id="run-kind-unknown"),
    R("run", "experiment = 3", EXIT, "experiment must be a string, got int", id="run-kind-type"),
    R("run", 'experiment = "diagonal"\nalpha = 1e-3', EXIT,
      "unknown key 'alpha'. Valid keys here: experiment, seed, solver", id="run-kind-key"),
    R("run", 'experiment = "attention_merged"\nhead = 2', EXIT,
      "unknown key 'head'. Did you mean 'heads'?", id="run-kind-key-close"),
    R("run", 'experiment = "diagonal"\ninit_scales = []', EXIT,
      "init_scales must list at least one value", id="run-kind-no-scales"),
    R("run", 'experiment = "quadratic"\ninit_scales = [1e-2, 0.0]', EXIT,
      "init_scales must be finite and > 0", id="run-kind-scale-0"),
    R("run", 'experiment = "quadratic"\ninit_scales = [0.9]', EXIT,
      "init_scales[0] = 0.9 is at or past the midpoint of the drop", id="run-quadratic-v0"),
    R("run", 'experiment = "quadratic"\nteacher = [-2.0, -1.0]', EXIT,
      "top eigenvalue tr(T) + 2 T_11 of Σ_yZ must be > 0", id="run-quadratic-teacher"),
    R("run", 'experiment = "diagonal"\nk = 9', EXIT,
      "k = 9 non-zeros do not fit in dimension d = 6", id="run-diagonal-k"),
    R("run", 'experiment = "diagonal"\nhorizon = 0.0', EXIT,
      "horizon must be finite and > 0", id="run-kind-horizon"),
    R("run", 'experiment = "relu_three_points"\nwidth = 0', EXIT, "width must be >= 1",
      id="run-relu-width"),
    R("run", 'experiment = "attention_merged"\ninit = "zero"', EXIT,
      "init = 'zero' is unknown. Valid values: aligned, random", id="run-attention-init"),
    R("run", 'experiment = "attention_separate"\nheads = 2', EXIT,
      "heads = 2 < 4 eigenvalues", id="run-separate-heads"),
    R("run", 'experiment = "attention_separate"\neigenvalues = [0.4, -0.1]', EXIT,
      "eigenvalues must be finite and > 0", id="run-separate-eigenvalues"),
    R("run", 'experiment = "attention_merged"\ncontext = 0', EXIT, "context must be >= 1",
      id="run-attention-context"),
    R("run", 'experiment = "quadratic"\nsolver = "rk45"', EXIT, "Valid names: auto, bosh3",
      id="run-kind-solver"),
    R("out", _preset_unknown, EXIT,
      "--preset 'diagonl' is unknown. Valid presets: attention_merged", id="run-preset"),
    R("out", _preset_and_config, EXIT, "either a config file or --preset NAME",
      id="run-preset-and-config"),
    # ---- unreadable files ----------------------------------------------------------------
    R("run", "x = = 1", EXIT, "not valid TOML", id="run-bad-toml"),
    # ---- gradflow sweep ------------------------------------------------------------------
    R("sweep", "chunk_sise = 4", EXIT, "Did you mean 'chunk_size'?", id="sweep-unknown"),
    R("sweep", "[network]\ndepht = 2", EXIT, "Did you mean 'depth'?", id="sweep-unknown-net"),
    R("sweep", "[grid]\ninit_scal = [1e-3]", EXIT,
      "unknown grid axis 'grid.init_scal'. Did you mean 'init_scale'?",
      id="sweep-unknown-axis"),
    R("sweep", "[grid]\nseed = ['a']", EXIT, "grid.seed[0] must be an integer, got str",
      id="sweep-type-axis"),
    R("sweep", "name = 3", EXIT, "name must be a string", id="sweep-type-name"),
    R("sweep", "grid = 3", EXIT, "grid must be a table of axes", id="sweep-type-grid"),
    R("sweep", "chunk_size = 0", EXIT, "chunk_size must be >= 1", id="sweep-chunk-0"),
    R("sweep", "[grid]\ninit_scale = []", EXIT, "grid.init_scale is empty",
      id="sweep-empty-axis"),
    R("sweep", "[grid]\nseed = []", EXIT, "grid.seed is empty", id="sweep-empty-seed"),
    R("sweep", "[grid]", EXIT, "grid has no axes", id="sweep-no-axes"),
    R("sweep", "[grid]\ninit_scale = [1e-3, 0.0]", EXIT,
      "grid.init_scale[1] must be finite and > 0", id="sweep-init-zero"),
    R("sweep", "[grid]\ninit_scale = [nan]", EXIT, "grid.init_scale[0] must be finite",
      id="sweep-init-nan"),
    R("sweep", "[grid]\ninit_scale = [inf]", EXIT, "grid.init_scale[0] must be finite",
      id="sweep-init-inf"),
    R("sweep", "[network]\ninit_scale = -1.0", EXIT, "network.init_scale must be finite",
      id="sweep-net-init"),
    R("sweep", "[grid]\ngamma = [nan]", EXIT, "grid.gamma[0] must be finite",
      id="sweep-gamma-nan"),
    R("sweep", "[grid]\nspectrum_exponent = [inf]", EXIT,
      "grid.spectrum_exponent[0] must be finite", id="sweep-exponent-inf"),
    R("sweep", "[grid]\nwidth = [0]", EXIT, "grid.width[0] must be >= 1", id="sweep-width-0"),
    R("sweep", "[grid]\ndepth = [2, 0]", EXIT, "grid.depth[1] must be >= 1",
      id="sweep-depth-0"),
    R("sweep", "[grid]\nseed = [-1]", EXIT, "grid.seed[0] must be an integer in [0, 2**32)",
      id="sweep-seed-neg"),
    R("sweep", "[network]\nt1 = 0", EXIT, "network.t1 must be finite and > 0",
      id="sweep-t1-0"),
    R("sweep", "rtol = 0.0", EXIT, "rtol must be finite and > 0", id="sweep-rtol-0"),
    R("sweep", "atol = 0.0", EXIT, "atol must be finite and > 0", id="sweep-atol-0"),
    R("sweep", 'solver = "rk45"', EXIT, "Valid names: auto, bosh3", id="sweep-solver"),
    R("sweep", "[grid]\ngamma = [1.0]\ninit_scale = [1e-3]", EXIT, "keep one of them",
      id="sweep-gamma-and-init"),
    # ---- existing output directories -----------------------------------------------------
    R("out", _run_out, EXIT, "already exists and is not empty; pass --force", id="run-out"),
    R("out", _sweep_out, EXIT, "holds no sweep store; pass --force", id="sweep-out"),
    R("out", _sweep_foreign_store, EXIT, "is not a gradflow sweep store",
      id="sweep-foreign-store"),
    # ---- Python API: data ----------------------------------------------------------------
    R("api", _dataset([[1.0, np.nan]], [[1.0]]), ValueError,
      "`x` contains 1 non-finite value(s) (NaN or inf)", id="data-nan"),
    R("api", _dataset([[1.0], [2.0]], [[1.0], [np.inf]]), ValueError,
      "`y` contains 1 non-finite value(s)", id="data-inf"),
    R("api", _dataset(np.ones((3, 2)), np.ones((2, 1))), ValueError,
      "same number of rows (examples): x has shape (3, 2), y has shape (2, 1)",
      id="data-rows"),
    R("api", _dataset(np.ones((0, 2)), np.ones((0, 1))), ValueError, "`x` is empty",
      id="data-empty"),
    R("api", _dataset(np.ones((2, 2), complex), np.ones((2, 1))), TypeError,
      "`x` must be real", id="data-complex"),
    R("api", _dtypes(np.ones((2, 2), np.int32), np.ones((2, 1), np.float32)), None,
      "float64 float64", id="data-upcast"),
    R("api", lambda: gf.data.linear_teacher([2.0, -1.0], key=KEY), ValueError,
      "`singular_values` must be positive", id="teacher-negative"),
    R("api", lambda: gf.models.DeepLinear(3, 4, 3, 2, float("nan"), key=KEY), ValueError,
      "`init_scale` must be positive and finite", id="model-init-nan"),
    # ---- Python API: flow arguments (raised before any compile) --------------------------
    R("api", _flow(in_size=4), ValueError,
      "match data.x (3, 3) and data.y (3, 3)", id="flow-shape"),
    R("api", _flow(t1=math.inf), ValueError, "t1=inf needs a stop condition: pass stop_when",
      id="flow-t1-inf"),
    R("api", _flow(t1=0.0), ValueError, "t1 must be > 0", id="flow-t1-0"),
    R("api", _flow(t1="ten"), TypeError, "t1 must be a number", id="flow-t1-str"),
    R("api", _flow(rtol=0.0), ValueError, "rtol must be > 0", id="flow-rtol"),
    R("api", _flow(atol=-1.0), ValueError, "atol must be > 0", id="flow-atol"),
    R("api", _flow(max_steps=0), ValueError, "max_steps must be >= 1", id="flow-max-steps"),
    R("api", _flow(solver="rk45"), ValueError, "Valid names: auto, bosh3", id="flow-solver"),
]
# fmt: on


@pytest.mark.parametrize("kind, given, expected, fragment", ROWS)
def test_bad_input(kind, given, expected, fragment, tmp_path, capsys):
    if kind == "api":
        if expected is None:
            assert fragment in str(given())
        else:
            with pytest.raises(expected) as err:
                given()
            assert fragment in str(err.value)
        return
    out = tmp_path / "out"
    if kind == "out":
        argv = given(tmp_path)
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
    else:
        config = tmp_path / "bad.toml"
        config.write_text(given + "\n")
        argv = [kind, str(config), "--out", str(out)]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == expected
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradflow: error: "), captured.err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    if kind == "out":  # nothing overwritten, nothing added
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    else:
        assert not out.exists()  # refused before any compute or write
