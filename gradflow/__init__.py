"""gradflow: exact gradient-flow ODEs of neural networks, integrated with adaptive solvers.

`import gradflow` enables float64 in JAX (`jax_enable_x64`); see `gradflow._misc.enable_x64`.
"""

from ._misc import enable_x64 as _enable_x64

_enable_x64()

from . import analysis as analysis, data as data, losses as losses  # noqa: E402
from . import models as models, theory as theory  # noqa: E402
from .data import Dataset as Dataset  # noqa: E402

__version__ = "0.1.0"
from ._flow import (  # noqa: E402
    AbstractField as AbstractField,
    FlowSolution as FlowSolution,
    GradientFlow as GradientFlow,
    ModifiedFlow as ModifiedFlow,
    flow as flow,
    log_grid as log_grid,
    solve_flow as solve_flow,
)
from ._gd import gd as gd  # noqa: E402
