import sys

from metaflow import FlowSpec, conda_base, step


@conda_base(python="%d.%d" % sys.version_info[:2])  # expect-error
class DynamicBaseFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
