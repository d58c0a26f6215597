"""Closed-form and reduced-ODE predictions for deep linear networks.

numpy and scipy only: theory never imports the simulator, so a prediction cannot silently
reuse the code it is meant to check. Every function accepts floats or numpy arrays
(broadcasting) and returns float64 numpy arrays or scalars.
"""

from .alignment import boursier_spurious_fit as boursier_spurious_fit
from .attention import attention_escape_time as attention_escape_time
from .attention import attention_merged_half_time as attention_merged_half_time
from .attention import attention_merged_loss as attention_merged_loss
from .attention import attention_merged_sigma as attention_merged_sigma
from .attention import attention_plateau_losses as attention_plateau_losses
from .attention import attention_plateau_weights as attention_plateau_weights
from .depth import depth_half_time as depth_half_time
from .depth import depth_loss as depth_loss
from .depth import depth_mode as depth_mode
from .depth import depth_mode_time as depth_mode_time
from .diagonal import diagonal_linear_jumps as diagonal_linear_jumps
from .escape import escape_time_law as escape_time_law
from .escape import width_gamma_escape_time as width_gamma_escape_time
from .hermite import hermite_coefficients as hermite_coefficients
from .levels import drop_midpoints as drop_midpoints
from .levels import plateau_levels as plateau_levels
from .quadratic_escape import quadratic_blowup_times as quadratic_blowup_times
from .random_init import drop_times_random_init as drop_times_random_init
from .random_init import expected_half_times as expected_half_times
from .random_init import random_init_half_times as random_init_half_times
from .random_init import random_init_u0 as random_init_u0
from .saxe import saxe_half_time as saxe_half_time
from .saxe import saxe_loss as saxe_loss
from .saxe import saxe_mode as saxe_mode
from .saxe import saxe_time as saxe_time
from .spectrum import power_law_spectrum as power_law_spectrum
from .theorem4 import theorem4_exponent as theorem4_exponent
from .type3 import quadratic_unit_escape_time as quadratic_unit_escape_time
from .type3 import type3_blowup_time as type3_blowup_time
