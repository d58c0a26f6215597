"""gradflow: exact gradient-flow ODEs of neural networks, integrated with adaptive solvers.

`import gradflow` enables float64 in JAX (`jax_enable_x64`, see `gradflow._misc.enable_x64`):
it is the one global JAX setting the package changes, and it is done before anything else.
"""

from ._misc import enable_x64 as _enable_x64

_enable_x64()

from . import analysis as analysis
from . import data as data
from . import losses as losses
from . import models as models
from . import theory as theory
from ._flow import RKC as RKC
from ._flow import AbstractField as AbstractField
from ._flow import Auto as Auto
from ._flow import Crossings as Crossings
from ._flow import ExpRB as ExpRB
from ._flow import FlowSolution as FlowSolution
from ._flow import GradientFlow as GradientFlow
from ._flow import ModifiedFlow as ModifiedFlow
from ._flow import RosW as RosW
from ._flow import flow as flow
from ._flow import log_grid as log_grid
from ._flow import solve_flow as solve_flow
from ._gd import gd as gd
from ._sweep import Grid as Grid
from ._sweep import sweep as sweep
from .data import Dataset as Dataset

__version__ = "0.1.0"
