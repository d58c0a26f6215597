"""Datasets and teachers (`gf.data`)."""

from .dataset import Dataset as Dataset, LinearTeacher as LinearTeacher
from .teachers import linear_teacher as linear_teacher, power_law as power_law
