"""Property-based tests (hypothesis, derandomized): data generators, config round trips and
the plateau detector on synthetic staircases.

Deterministic: `derandomize=True` draws the same examples on every run, no example database is
written, and there is no deadline (a first call may compile).
"""

import tomllib

import jax
import numpy as np
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st

import gradflow as gf
from gradflow._config import RunConfig, dumps, from_dict
from gradflow._flow.options import SOLVERS
from gradflow._sweep import job


def deterministic(max_examples):
    return settings(derandomize=True, max_examples=max_examples, deadline=None, database=None)


# --------------------------------------------------------------------------------------------
# linear_teacher realises the requested spectrum exactly


@st.composite
def teacher_args(draw):
    r = draw(st.integers(1, 4))
    s = draw(st.lists(st.floats(1e-2, 1e2), min_size=r, max_size=r))
    in_size = r + draw(st.integers(0, 2))
    out_size = r + draw(st.integers(0, 2))
    return np.array(s), in_size, out_size, draw(st.booleans()), draw(st.integers(0, 2**31))


@deterministic(8)
@given(teacher_args())
def test_linear_teacher_spectrum_is_exact(args):
    s, in_size, out_size, rotate, seed = args
    data = gf.data.linear_teacher(
        s, in_size=in_size, out_size=out_size, key=jax.random.key(seed), rotate=rotate
    )
    x, y = np.asarray(data.x), np.asarray(data.y)
    p = x.shape[0]
    assert x.dtype == y.dtype == np.float64
    assert x.shape == (in_size, in_size) and y.shape == (in_size, out_size)
    np.testing.assert_allclose(x.T @ x / p, np.eye(in_size), rtol=0, atol=1e-12)
    sv = np.linalg.svd(y.T @ x / p, compute_uv=False)
    want = np.sort(s)[::-1]
    r = s.size
    np.testing.assert_allclose(sv[:r], want, rtol=1e-10, atol=0)
    assert np.all(sv[r:] <= 1e-12 * want[0])  # no other modes
    np.testing.assert_allclose(np.asarray(data.teacher.s), want, rtol=1e-14, atol=0)
    np.testing.assert_allclose(y.T @ x / p, np.asarray(data.teacher.matrix()), atol=1e-12)


# --------------------------------------------------------------------------------------------
# config round trip: dumps, then from_dict, gives an equal config

pos = st.floats(1e-12, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def run_tables(draw):
    s = draw(st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=5))
    r = len(s)
    size = st.none() | st.integers(r, r + 4)
    teacher = {
        "singular_values": s,
        "in_size": draw(size),
        "out_size": draw(size),
        "rotate": draw(st.booleans()),
    }
    networks = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "depth": st.integers(1, 6),
                    "width": st.integers(1, 512),
                    "init_scale": pos,
                    "t1": pos,
                }
            ),
            min_size=1,
            max_size=3,
        )
    )
    runs = draw(
        st.lists(
            st.fixed_dictionaries(
                {"optimizer": st.sampled_from(["sgd", "momentum", "nesterov", "adam"]), "lr": pos},
                optional={"momentum": st.floats(0.0, 0.999), "batch_size": st.integers(1, 10_000)},
            ),
            max_size=3,
        )
    )
    table = {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "solver": draw(st.sampled_from(sorted(SOLVERS))),
        "rtol": draw(pos),
        "atol": draw(st.none() | pos),
        "save_points": draw(st.integers(2, 10_000)),
        "max_steps": draw(st.integers(1, 10**9)),
        "teacher": teacher,
        "networks": networks,
        "gd": {"runs": runs},
    }
    # TOML has no null: a None value is the same as leaving the key out
    return {k: v for k, v in table.items() if v is not None} | {
        "teacher": {k: v for k, v in teacher.items() if v is not None}
    }


@deterministic(40)
@given(run_tables())
def test_run_config_round_trip(table):
    cfg = from_dict(table)
    assert isinstance(cfg, RunConfig)
    text = dumps(cfg)
    assert from_dict(tomllib.loads(text)) == cfg
    assert dumps(from_dict(tomllib.loads(text))) == text


@st.composite
def sweep_tables(draw):
    axes = {
        "init_scale": st.lists(pos, min_size=1, max_size=4, unique=True),
        "seed": st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3, unique=True),
        "width": st.lists(st.integers(1, 64), min_size=1, max_size=3, unique=True),
        "depth": st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True),
        "spectrum_exponent": st.lists(st.floats(-3, 3), min_size=1, max_size=3, unique=True),
    }
    names = draw(st.lists(st.sampled_from(sorted(axes)), min_size=1, max_size=3, unique=True))
    table = {
        "name": draw(st.text(max_size=12)),
        "solver": draw(st.sampled_from(sorted(SOLVERS))),
        "rtol": draw(pos),
        "chunk_size": draw(st.none() | st.integers(1, 64)),
        "network": {"depth": draw(st.integers(1, 4)), "t1": draw(pos)},
        "grid": {n: draw(axes[n]) for n in names},
    }
    return {k: v for k, v in table.items() if v is not None}


@deterministic(20)
@given(sweep_tables())
def test_sweep_config_round_trip(table):
    cfg = job.from_dict(table)
    assert job.from_dict(tomllib.loads(job.dumps(cfg))) == cfg


# --------------------------------------------------------------------------------------------
# plateau detector on exact Saxe staircases


@st.composite
def staircases(draw):
    r = draw(st.integers(1, 4))
    s = [draw(st.floats(0.5, 5.0))]
    for _ in range(r - 1):  # distinct, decreasing: each mode at most 0.6 of the previous one
        s.append(s[-1] * draw(st.floats(0.25, 0.6)))
    s = np.array(s)
    u0 = 10.0 ** draw(st.floats(-12, -6))
    residual = draw(st.floats(0.05, 0.5)) * s[-1] ** 2
    return s, u0, residual


@deterministic(25)
@given(staircases())
def test_plateaus_recover_saxe_staircase(case):
    s, u0, residual = case
    half = gf.theory.saxe_half_time(s, u0)
    t = np.geomspace(1e-3 * half[0], 4.0 * half[-1], 3000)
    loss = gf.theory.saxe_loss(t, s, u0, residual)
    levels = gf.theory.plateau_levels(s, residual)
    table = gf.analysis.plateaus(t=t, loss=loss, levels=levels)
    assert len(table) == s.size + 1
    np.testing.assert_allclose(table.level, levels, rtol=1e-2, atol=0)
    # drop k: the exact first crossing of the midpoint between levels k and k + 1
    mids = 0.5 * (levels[:-1] + levels[1:])
    exact = [
        scipy.optimize.brentq(
            lambda x, m=m: gf.theory.saxe_loss(x, s, u0, residual) - m, t[0], t[-1], xtol=1e-14
        )
        for m in mids
    ]
    np.testing.assert_allclose(table.drop[:-1], exact, rtol=1e-3, atol=0)
    assert np.isnan(table.drop[-1])
    assert np.all(table.start <= table.end)
