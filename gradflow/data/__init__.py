"""Datasets and teachers (`gf.data`)."""

from .dataset import Dataset as Dataset
from .dataset import LinearTeacher as LinearTeacher
from .teachers import linear_teacher as linear_teacher
from .teachers import power_law as power_law
