"""Trace a function once per solve, however often the solve calls it.

Tracing, not XLA, is about half of a solve's compile time (a 2-layer `gf.flow` with the
default solver: 1.7 s of tracing, 1.8 s of backend compile at XLA's level 0). Most of it was
the same Python run several times over the same shapes: the field is called at every stage of
every method (45 calls per `Auto` trace), and diffrax traces a solver's `step` three times
(twice under `eval_shape` to learn its output structure, once in the loop). Behind a
`jax.jit` boundary each is traced once and reused; XLA inlines the calls before it optimises,
so the compiled program is the same (same instruction counts; bitwise the same solutions on
the benchmark cases) and so is its run time. Measured: tracing 1.7 → 0.9 s, first call of that
solve 3.4 → 2.7 s.
"""

from __future__ import annotations

import functools

import equinox as eqx


def traced_once(method):
    """`method(self, *args)` behind `eqx.filter_jit`: arrays are traced arguments, the rest
    (the module's static fields, Python bools such as diffrax's first `made_jump`) is part
    of the cache key."""
    jitted = eqx.filter_jit(method)

    @functools.wraps(method)
    def wrapper(self, *args):
        return jitted(self, *args)

    return wrapper
