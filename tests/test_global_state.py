"""The one global JAX setting gradflow changes (float64), as documented in docs/index.md.

- `import gradflow` turns `jax_enable_x64` on, also when the user had turned it off before,
  and changes no other `jax.config` value (nor imports matplotlib); arrays created before
  the import keep their float32 dtype.
- Turned off again after the import, every public verb refuses to run (RuntimeError naming
  the setting and the fix) instead of solving in float32.
- float32 parameters (e.g. created before the import) are integrated in float64 by the
  flow; `gf.gd` keeps their dtype.
"""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradflow as gf


def test_import_turns_float64_on_and_nothing_else():
    code = (
        "import sys, jax, jax.numpy as jnp\n"
        "jax.config.update('jax_enable_x64', False)\n"
        "before, a = dict(jax.config.values), jnp.ones(2)\n"
        "import gradflow\n"
        "after = dict(jax.config.values)\n"
        "changed = sorted(k for k in before | after if before.get(k) != after.get(k))\n"
        "print(jax.config.jax_enable_x64, a.dtype, jnp.ones(2).dtype, changed,\n"
        "      'matplotlib' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    # on although the user had turned it off; arrays made before keep float32; no other
    # jax config value differs; matplotlib is not imported
    assert out.stdout.split() == ["True", "float32", "float64", "['jax_enable_x64']", "False"], (
        out.stdout + out.stderr
    )


def test_float64_turned_off_after_import_is_refused():
    key = jax.random.key(0)
    data = gf.data.linear_teacher([2.0, 1.0], key=key)
    model = gf.models.DeepLinear(2, 3, 2, 2, 1e-3, key=key)
    loss = lambda p, a: jnp.sum(p**2)
    build = lambda init_scale: (model, data)
    calls = {
        "gf.solve_flow": lambda: gf.solve_flow(loss, jnp.ones(2), t1=1.0),
        "gf.flow": lambda: gf.flow(model, data, t1=1.0),
        "gf.gd": lambda: gf.gd(model, data, optax.sgd(0.1), num_steps=2),
        "gf.sweep": lambda: gf.sweep(build, gf.Grid(init_scale=[1e-3]), t1=1.0),
    }
    jax.config.update("jax_enable_x64", False)
    try:
        for name, call in calls.items():
            with pytest.raises(RuntimeError, match=r"jax_enable_x64.*jax\.config\.update") as e:
                call()
            assert str(e.value).startswith(name), str(e.value)
    finally:
        jax.config.update("jax_enable_x64", True)
    assert jnp.ones(1).dtype == jnp.float64


def test_float32_params_are_integrated_in_float64():
    target = np.array([1.0, -2.0, 0.5])
    loss = lambda p, a: 0.5 * jnp.sum((p - a) ** 2)
    p32 = jnp.full(3, 1e-3, dtype=jnp.float32)
    sol = gf.solve_flow(
        loss, p32, jnp.asarray(target), t1=30.0, save=5, solver="tsit5", rtol=1e-12, atol=1e-14
    )
    assert sol.params.dtype == jnp.float64 and sol.loss.dtype == jnp.float64
    # θ(t) = target + (θ0 − target) e^{−t} to 1e-9: float32 (eps 1.2e-7 at 2.0) cannot
    exact = target + (np.float64(np.float32(1e-3)) - target) * np.exp(-30.0)
    np.testing.assert_allclose(np.asarray(sol.params), exact, rtol=0, atol=1e-9)


def test_gd_keeps_the_dtype_of_its_parameters():
    key = jax.random.key(0)
    data = gf.data.linear_teacher([2.0, 1.0], key=key)
    model = gf.models.DeepLinear(2, 3, 2, 2, 1e-3, key=key)
    m32 = jax.tree.map(lambda x: x.astype(jnp.float32) if eqx.is_inexact_array(x) else x, model)
    run = gf.gd(m32, data, optax.sgd(0.1), num_steps=3)
    assert {w.dtype for w in run.model.weights} == {jnp.dtype(jnp.float32)}  # as documented
