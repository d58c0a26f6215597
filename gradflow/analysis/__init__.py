"""Analysis of solutions: plateaus, transitions, sharpness, flow-vs-GD comparisons."""

from .compare import Comparison as Comparison
from .compare import compare as compare
from .metrics import effective_rank as effective_rank
from .metrics import mode_strengths as mode_strengths
from .plateaus import PlateauTable as PlateauTable
from .plateaus import first_crossing as first_crossing
from .plateaus import plateaus as plateaus
from .sharpness import hessian_top_eigenvalue as hessian_top_eigenvalue
from .sharpness import sharpness as sharpness
