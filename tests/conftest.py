import jax
import pytest

import gradflow  # noqa: F401  (enables float64)

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(0)

import tempfile  # noqa: E402

# Within one test session the same computation is often compiled by several tests (each
# builds its own jitted closure); XLA's persistent cache turns the repeats into disk hits
# (measured: the suite 252 s → 212 s). A fresh directory per session keeps runs independent.
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="gradflow-jax-cache-"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
