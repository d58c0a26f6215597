r"""Named scalar activations $\sigma$ shared by the two-layer, convolutional and deep models.

The name, not the function, is stored on a model (a static string), so models stay hashable
and the complexity measure can dispatch on it. Every activation has $\sigma(0) = 0$, hence a
zero unit ($u = 0$, $v = 0$) is a fixed point of the flow (THEORY.md §1.3 (ii)). The lowest
non-vanishing Taylor order at 0 decides the separation type (THEORY.md §1.6):

| name | $\sigma(z)$ | lowest order | type |
|---|---|---|---|
| `linear` | $z$ | 1 | I (rank) |
| `relu` | $\max(z, 0)$ | homogeneous of degree 1 | II (rays, kinks) |
| `quadratic` | $z^2$ | 2 | III (active units) |
| `xtanh` | $z \tanh z$ | 2 | III |
| `cubic` | $z^3$ | 3 | III (stronger separation) |
| `tanh` | $\tanh z$ | 1 | negative control (one drop) |
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda z: z,
    "relu": jax.nn.relu,
    "quadratic": jnp.square,
    "xtanh": lambda z: z * jnp.tanh(z),
    "cubic": lambda z: z**3,
    "tanh": jnp.tanh,
}

#: Activations whose units are compared by size (Type III: a unit is recruited or not).
UNIT_SPARSE = ("quadratic", "xtanh", "cubic")


def check_activation(activation, allowed=None) -> str:
    """`activation` as a valid name, or a ValueError listing the valid names."""
    names = tuple(ACTIVATIONS) if allowed is None else tuple(allowed)
    if not isinstance(activation, str) or activation not in names:
        raise ValueError(f"Unknown `activation`={activation!r}. Valid names: {', '.join(names)}.")
    return activation


def apply(activation: str, z: jax.Array) -> jax.Array:
    """$\\sigma(z)$ for a validated activation name."""
    return ACTIVATIONS[activation](z)
