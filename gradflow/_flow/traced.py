"""Trace a function once per solve, however often the solve calls it.

Tracing is a large part of a solve's first call (a 2-layer `gf.flow` with the default
solver: 1.6–1.9 s of tracing beside 5–5.5 s of XLA backend compile with XLA's default
settings, 1.8 s at the test suite's optimisation level 0). Most of it was the same Python run
several times over the same shapes: the field is called at every stage of every method (45
calls per `Auto` trace), and diffrax traces a solver's `step` three times (twice under
`eval_shape` to learn its output structure, once in the loop). Behind a `jax.jit` boundary
each is traced once and reused; XLA inlines the calls before it optimises, so the compiled
program is the same (same instruction counts; bitwise the same solutions on the benchmark
cases) and so is its run time. Measured on that solve: tracing 1.6–1.9 → 1.0–1.1 s; first
call 6.0–7.1 → 5.3–6.5 s with XLA's default settings, 3.4 → 2.7 s at level 0.
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
