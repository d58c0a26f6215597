import jax
import pytest

import gradflow  # noqa: F401  (enables float64)

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(0)
