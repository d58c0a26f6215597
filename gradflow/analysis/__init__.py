"""Analysis of solutions: plateaus, mode strengths and effective rank (more to come)."""

from .metrics import effective_rank as effective_rank
from .metrics import mode_strengths as mode_strengths
from .plateaus import PlateauTable as PlateauTable
from .plateaus import first_crossing as first_crossing
from .plateaus import plateaus as plateaus
