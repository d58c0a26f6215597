from .crossings import Crossings as Crossings
from .field import AbstractField as AbstractField
from .field import GradientFlow as GradientFlow
from .field import ModifiedFlow as ModifiedFlow
from .options import log_grid as log_grid
from .solution import FlowSolution as FlowSolution
from .solve import flow as flow
from .solve import solve_flow as solve_flow
