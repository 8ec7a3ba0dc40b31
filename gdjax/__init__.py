"""gdjax: optimizer sweeps as one compiled JAX program."""

from importlib.metadata import PackageNotFoundError, version

from gdjax import schedules as schedules
from gdjax import search as search
from gdjax import theory as theory
from gdjax.checks import DTYPES as DTYPES
from gdjax.compile_cache import use_compile_cache as use_compile_cache
from gdjax.engine import SweepProgram as SweepProgram
from gdjax.engine import prepare_sweep as prepare_sweep
from gdjax.engine import seeds_matter as seeds_matter
from gdjax.engine import sweep as sweep
from gdjax.networks import classification as classification
from gdjax.networks import digits as digits
from gdjax.networks import mnist1d as mnist1d
from gdjax.optimizers import OPTIMIZERS as OPTIMIZERS
from gdjax.optimizers import declarations as declarations
from gdjax.placement import request_cpu_devices
from gdjax.placement import runs_mesh as runs_mesh
from gdjax.problems import Facts as Facts
from gdjax.problems import Problem as Problem
from gdjax.problems import function_problem as function_problem
from gdjax.problems import linear_regression as linear_regression
from gdjax.problems import logistic_regression as logistic_regression
from gdjax.problems import quadratic as quadratic
from gdjax.problems import regression_from_csv as regression_from_csv
from gdjax.problems import rosenbrock as rosenbrock
from gdjax.problems import xor as xor
from gdjax.result import SweepResult as SweepResult

request_cpu_devices()  # before JAX starts: one CPU device per core (see gdjax.placement)

try:
    __version__ = version("gdjax")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
