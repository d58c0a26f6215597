"""The field and the solver's step are traced once per solve (`gradflow/_flow/traced.py`)."""

import jax.numpy as jnp

import gradflow as gf


def test_the_loss_is_traced_a_few_times_per_solve_not_once_per_stage():
    # Counted: Python calls of the loss while `gf.solve_flow` traces its one program with the
    # default solver (`auto`: Tsit5 written out, RosW, power iterations). The field is called
    # at every stage of every method and diffrax traces `step` three times: 41 calls of the
    # loss before `traced_once`, 3 with it (the field's gradient, the guard's loss, the
    # saved summary).
    calls = []

    def loss(p, a):
        calls.append(1)
        return 0.5 * jnp.sum(jnp.array([3.0, 1.0, 0.2]) * p**2) + 0.1 * jnp.sum(p**4)

    sol = gf.solve_flow(loss, jnp.array([1.0, 0.5, 0.3]), t1=2.0, save=4, progress=False)
    assert sol.status == "success"
    assert len(calls) <= 4, len(calls)
