import os
import subprocess
import sys
import tempfile

# Compilation dominates this suite (a few seconds per distinct solve, runs of milliseconds).
# Both settings below must be in the environment before JAX initialises, and subprocess tests
# (CLI, multi-device, kill-and-resume) inherit them, so they compile exactly as the
# in-process tests do and share the same cache.
#
# 1. XLA's backend optimisation level 0 compiles ≈30% faster (CPU time of a solve's compile
#    3.5 s → 2.5 s) with no measurable run-time cost at these sizes, and XLA's older fusion
#    code generator (`xla_cpu_use_fusion_emitters=false`) a third faster again (default
#    `auto` solve of a 2-layer net: backend compile 2.0 s → 0.9 s; run time within noise).
#    That generator's rounding differs between programs (a loss evaluated under `vmap` or in
#    a resumed solve ends a few ulps off): tests marked `default_codegen`, which check
#    bitwise reproducibility, run in a subprocess with XLA's default generator (below).
FAST_CODEGEN = "--xla_cpu_use_fusion_emitters=false"
DEFAULT_CODEGEN = os.environ.get("GRADFLOW_TEST_DEFAULT_CODEGEN") == "1"  # in that subprocess
os.environ["XLA_FLAGS"] = " ".join(
    os.environ.get("XLA_FLAGS", "").replace(FAST_CODEGEN, "").split()
    + ["--xla_backend_optimization_level=0"]
    + ([] if DEFAULT_CODEGEN else [FAST_CODEGEN])
)
# 2. The same computation is often compiled by several tests (each builds its own jitted
#    closure), in both xdist workers and in subprocesses: XLA's persistent cache turns the
#    repeats into disk hits. One fresh directory per test run (xdist's run id is shared by
#    its workers; it is known only in `pytest_configure`) keeps runs independent.

import jax  # noqa: E402
import pytest  # noqa: E402

import gradflow  # noqa: E402, F401  (enables float64)


def pytest_configure(config):
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # workers inherit the controller's
        run = getattr(config, "workerinput", {}).get("testrunuid")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = (
            os.path.join(tempfile.gettempdir(), f"gradflow-jax-cache-{run}")
            if run
            else tempfile.mkdtemp(prefix="gradflow-jax-cache-")
        )
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    # a size limit turns on JAX's file lock (filelock), so that processes sharing the cache
    # never read an entry another one is still writing
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(8 << 30)
    # jax was imported above, before these existed: set them for this process as well
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", 8 << 30)


jax.config.update("jax_enable_x64", True)


#: The slowest files (seconds of test time in the tier, measured on 2 cores), started first.
#: pytest-xdist's `loadfile` hands out whole files as workers free up; by default it orders
#: them by their number of tests, which put these (few, long tests) last, with one worker
#: idle while the other finished them. Longest first balances the two (`--no-loadscope-
#: reorder` in pyproject.toml keeps this order).
SLOW_FILES = (
    "test_reproducibility.py",  # ~45 s, one subprocess
    "test_benchmarks_smoke.py",  # ~40 s
    "test_docs.py",  # ~44 s
    "test_models_zoo.py",  # ~40 s
    "test_flow.py",  # ~33 s
    "test_rosw.py",  # ~31 s
    "test_linear_start.py",  # ~31 s
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))  # stable


#: outcomes of the `default_codegen` subprocess, per test file: {nodeid: (outcome, report)}
_DEFAULT_CODEGEN_RUNS: dict[str, dict[str, tuple[str, str]]] = {}


def _run_default_codegen(item) -> dict[str, tuple[str, str]]:
    """Every selected `default_codegen` test of `item`'s file, in one subprocess with XLA's
    default code generator (one interpreter start and one JAX import, ~7 s of CPU, for all
    of them); their outcomes by node id, and each failure's report."""
    path = item.nodeid.split("::")[0]
    if path in _DEFAULT_CODEGEN_RUNS:
        return _DEFAULT_CODEGEN_RUNS[path]
    ids = [
        i.nodeid
        for i in item.session.items
        if i.nodeid.split("::")[0] == path and i.get_closest_marker("default_codegen")
    ]
    env = dict(os.environ, GRADFLOW_TEST_DEFAULT_CODEGEN="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-n", "0", "-p", "no:cacheprovider",
           *ids]  # fmt: skip
    out = subprocess.run(cmd, env=env, cwd=item.config.rootpath, capture_output=True, text=True)
    report = out.stdout[-8000:] + out.stderr[-2000:]
    outcomes = {}
    for line in out.stdout.splitlines():  # -rA: "PASSED <nodeid>", "FAILED <nodeid> - ..."
        word, _, rest = line.partition(" ")
        nodeid = rest.split(" ")[0]
        if word in ("PASSED", "FAILED", "ERROR") and nodeid in ids:
            # a failure wins over a pass (a test can pass and then error in its teardown)
            if word != "PASSED" or nodeid not in outcomes:
                outcomes[nodeid] = word
    _DEFAULT_CODEGEN_RUNS[path] = {i: (outcomes.get(i, "NOT RUN"), report) for i in ids}
    return _DEFAULT_CODEGEN_RUNS[path]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run a `default_codegen` test in a subprocess with XLA's default code generator.

    (pytest has set up the test's fixtures in this process already: keep such a test's
    solves in its body, not in fixtures, or they are computed twice.)"""
    if DEFAULT_CODEGEN or pyfuncitem.get_closest_marker("default_codegen") is None:
        return None
    outcome, report = _run_default_codegen(pyfuncitem)[pyfuncitem.nodeid]
    if outcome != "PASSED":
        pytest.fail(
            f"{pyfuncitem.nodeid}: {outcome} with XLA's default code generator (subprocess):\n"
            + report,
            pytrace=False,
        )
    return True


@pytest.fixture
def key():
    return jax.random.key(0)


def _quartic(y, args):
    a = jax.numpy.diag(jax.numpy.array([1.0, 30.0, -0.5]))
    return 0.5 * y @ a @ y + 0.25 * jax.numpy.sum(y**4) + 0.1 * y[0] ** 2 * y[1]


@pytest.fixture(scope="session")
def fixed_step_errors():
    """`errors(solver, ns)`: max-norm errors at t = 1 of `n` constant steps of `solver`, for
    each n in `ns`, on a stiff nonlinear gradient flow (curvatures 1, 30 and −0.5, a saddle,
    with quartic and cubic couplings), against Dopri8 at rtol 1e-13."""
    import diffrax as dfx
    import equinox as eqx

    term = dfx.ODETerm(lambda t, y, a: -jax.grad(_quartic)(y, a))
    y0 = jax.numpy.array([0.7, 0.3, 0.2])
    tight = dfx.PIDController(rtol=1e-13, atol=1e-13)
    ref = dfx.diffeqsolve(term, dfx.Dopri8(), 0.0, 1.0, 1e-3, y0, max_steps=100_000,
                          stepsize_controller=tight).ys[-1]  # fmt: skip

    @eqx.filter_jit
    def steps(solver, n):
        sol = dfx.diffeqsolve(term, solver, 0.0, 1.0, 1.0 / n, y0, max_steps=256,
                              stepsize_controller=dfx.ConstantStepSize())  # fmt: skip
        return sol.ys[-1]

    # n as an array: traced, so that one compile per solver serves every step count
    return lambda solver, ns: [
        float(jax.numpy.max(jax.numpy.abs(steps(solver, jax.numpy.asarray(float(n))) - ref)))
        for n in ns
    ]
