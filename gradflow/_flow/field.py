"""Vector fields: what the flow integrates, as a function of the loss.

A field is an equinox Module called as `field(loss_fn, t, params, args)` and returning
$d\\theta/dt$ with the structure of `params`. It is the extension point for research on other
flows (preconditioned, projected, ...): subclass `AbstractField`, implement `__call__`, and the
solver, saving, events, sweeps and GD comparison work unchanged.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import PyTree


class AbstractField(eqx.Module):
    """Base class of vector fields $\\dot\\theta = F(\\theta)$ built from a loss.

    Subclasses set `grads_per_call` and `hvps_per_call` (how many gradients and
    Hessian-vector products one evaluation costs) so that solution statistics can report
    the work done in the units users compare against (one GD step = one gradient).
    """

    grads_per_call: ClassVar[int] = 1
    hvps_per_call: ClassVar[int] = 0

    @abc.abstractmethod
    def __call__(self, loss_fn: Callable, t, params: PyTree, args) -> PyTree:
        """Return $d\\theta/dt$ at `params` (same pytree structure)."""


class GradientFlow(AbstractField):
    r"""The gradient flow $\dot\theta = -\nabla_\theta L(\theta)$.

    Its time is the continuous limit of gradient descent: one GD step with learning rate
    $\eta$ advances time by $\eta$.
    """

    def __call__(self, loss_fn, t, params, args):
        del t
        grads = jax.grad(loss_fn)(params, args)
        return jax.tree.map(jnp.negative, grads)


class ModifiedFlow(AbstractField):
    r"""The first-order modified (backward-error) flow of gradient descent at learning rate `lr`:

    $$\dot\theta = -\nabla\Big(L + \frac{\eta}{4}\|\nabla L\|^2\Big)
    = -\nabla L - \frac{\eta}{2} \nabla^2 L\, \nabla L.$$

    GD with step $\eta$ follows this flow to $O(\eta^2)$ per unit time (Barrett & Dherin 2021),
    where it follows the plain gradient flow only to $O(\eta)$. The Hessian enters only through
    one Hessian-vector product (forward-over-reverse), never as a dense matrix.

    **Arguments:**

    - `lr`: the learning rate $\eta > 0$ of the GD run being modelled.
    """

    # an array leaf (not a static float), so that a sweep over lr reuses one compiled solve
    lr: jax.Array = eqx.field(converter=lambda x: jnp.asarray(x, dtype=float))
    hvps_per_call: ClassVar[int] = 1

    def __check_init__(self):
        if not isinstance(self.lr, jax.core.Tracer) and not (float(self.lr) > 0):
            raise ValueError(
                f"ModifiedFlow(lr=...) needs a positive learning rate, got {self.lr}."
            )

    def __call__(self, loss_fn, t, params, args):
        del t
        grad_fn = lambda p: jax.grad(loss_fn)(p, args)
        g = grad_fn(params)
        _, hg = jax.jvp(grad_fn, (params,), (g,))
        return jax.tree.map(lambda a, b: -(a + 0.5 * self.lr * b), g, hg)
