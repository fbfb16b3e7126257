# A base flow in a module of the flow's directory (imported by imported_base.py).
from metaflow import FlowSpec, conda, conda_base, step

SHARED = {"numpy": "1.26.4"}


@conda_base(python="3.11", packages=SHARED)
class TeamFlow(FlowSpec):
    @conda(packages={"pandas": "2.2.2"})
    @step
    def start(self):
        self.next(self.train)

    @step
    def end(self):
        pass
