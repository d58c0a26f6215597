"""Analysis of solutions: plateaus, transitions, sharpness, flow-vs-GD comparisons."""

from .compare import Comparison as Comparison
from .compare import compare as compare
from .complexity import complexity as complexity
from .complexity import complexity_metric as complexity_metric
from .complexity import head_directions as head_directions
from .complexity import register_complexity as register_complexity
from .complexity import support as support
from .complexity import unit_sizes as unit_sizes
from .metrics import effective_rank as effective_rank
from .metrics import mode_strengths as mode_strengths
from .plateaus import PlateauTable as PlateauTable
from .plateaus import drop_levels as drop_levels
from .plateaus import first_crossing as first_crossing
from .plateaus import plateaus as plateaus
from .sharpness import hessian_top_eigenvalue as hessian_top_eigenvalue
from .sharpness import sharpness as sharpness
