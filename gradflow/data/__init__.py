"""Datasets and teachers (`gf.data`)."""

from .dataset import Dataset as Dataset
from .dataset import LinearTeacher as LinearTeacher
from .digits import DIGITS_CLASSES as DIGITS_CLASSES
from .digits import digit_labels as digit_labels
from .digits import digits as digits
from .generators import boursier_three_points as boursier_three_points
from .generators import conv_teacher as conv_teacher
from .generators import orthogonal_relu_data as orthogonal_relu_data
from .generators import quadratic_population_loss as quadratic_population_loss
from .generators import quadratic_teacher as quadratic_teacher
from .generators import sparse_regression as sparse_regression
from .generators import stewart as stewart
from .in_context import InContextTask as InContextTask
from .in_context import icl_eigenvalues as icl_eigenvalues
from .in_context import in_context_population_loss as in_context_population_loss
from .in_context import in_context_regression as in_context_regression
from .relu_population import relu_population_loss as relu_population_loss
from .teachers import linear_teacher as linear_teacher
from .teachers import power_law as power_law
