"""Analysis of solutions: plateaus, transitions, sharpness, flow-vs-GD comparisons, saddles,
alignment of units and the early-time linear model."""

from .alignment import Misalignment as Misalignment
from .alignment import aligned_fraction as aligned_fraction
from .alignment import alignment_metric as alignment_metric
from .alignment import half_strength_stop as half_strength_stop
from .alignment import misalignment as misalignment
from .alignment import misalignment_at_half_strength as misalignment_at_half_strength
from .alignment import neuron_cosines as neuron_cosines
from .compare import Comparison as Comparison
from .compare import compare as compare
from .complexity import complexity as complexity
from .complexity import complexity_metric as complexity_metric
from .complexity import head_directions as head_directions
from .complexity import register_complexity as register_complexity
from .complexity import support as support
from .complexity import unit_sizes as unit_sizes
from .linear_model import EarlyLinearModel as EarlyLinearModel
from .linear_model import LinearModelGap as LinearModelGap
from .linear_model import early_linear_model as early_linear_model
from .linear_model import linear_model_gap as linear_model_gap
from .linear_model import predictions as predictions
from .metrics import effective_rank as effective_rank
from .metrics import mode_strengths as mode_strengths
from .plateaus import PlateauTable as PlateauTable
from .plateaus import drop_levels as drop_levels
from .plateaus import first_crossing as first_crossing
from .plateaus import plateaus as plateaus
from .saddle import Saddle as Saddle
from .saddle import measured_escape_time as measured_escape_time
from .saddle import predicted_escape_time as predicted_escape_time
from .saddle import refine_saddle as refine_saddle
from .sharpness import hessian_top_eigenvalue as hessian_top_eigenvalue
from .sharpness import sharpness as sharpness
