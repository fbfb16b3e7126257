"""Metaflow's @conda, @pypi, @conda_base and @pypi_base, accepting `--environment=prebuilt`.

Metaflow's decorators refuse every environment whose TYPE is not conda, pypi or fast-bakery. The
prebuilt environment is a conda environment (it extends Metaflow's CondaEnvironment and falls
back to it for every step without a prebuilt image), so for the duration of the check these
subclasses present it as one. Under any other environment they behave exactly as Metaflow's own.
"""

from contextlib import contextmanager

from metaflow.plugins.pypi.conda_decorator import (
    CondaFlowDecorator,
    CondaStepDecorator,
)
from metaflow.plugins.pypi.pypi_decorator import PyPIFlowDecorator, PyPIStepDecorator

PREBUILT_TYPE = "prebuilt"


@contextmanager
def accepted_as_conda(environment):
    """While active, a prebuilt environment reports TYPE "conda" (an instance attribute that
    shadows the class's). Nested uses and other environments are left alone."""
    if getattr(environment, "TYPE", None) != PREBUILT_TYPE:
        yield
        return
    environment.TYPE = "conda"
    try:
        yield
    finally:
        del environment.TYPE


class _AcceptsPrebuiltStep:
    """Runs the decorator's step_init with a prebuilt environment presented as conda."""

    def step_init(self, flow, graph, step, decos, environment, *rest):
        with accepted_as_conda(environment):
            super().step_init(flow, graph, step, decos, environment, *rest)


class _AcceptsPrebuiltFlow:
    """Runs the decorator's flow_init with a prebuilt environment presented as conda."""

    def flow_init(self, flow, graph, environment, *rest):
        with accepted_as_conda(environment):
            super().flow_init(flow, graph, environment, *rest)


class PrebuiltCondaStepDecorator(_AcceptsPrebuiltStep, CondaStepDecorator):
    __doc__ = CondaStepDecorator.__doc__


class PrebuiltPyPIStepDecorator(_AcceptsPrebuiltStep, PyPIStepDecorator):
    __doc__ = PyPIStepDecorator.__doc__


class PrebuiltCondaFlowDecorator(_AcceptsPrebuiltFlow, CondaFlowDecorator):
    __doc__ = CondaFlowDecorator.__doc__


class PrebuiltPyPIFlowDecorator(_AcceptsPrebuiltFlow, PyPIFlowDecorator):
    __doc__ = PyPIFlowDecorator.__doc__
