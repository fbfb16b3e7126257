from metaflow import FlowSpec, pypi_base

from .mixins import SharedSteps


@pypi_base(python="3.11", packages={"requests": "2.32.3"})
class PypiTeamFlow(SharedSteps, FlowSpec):
    pass
