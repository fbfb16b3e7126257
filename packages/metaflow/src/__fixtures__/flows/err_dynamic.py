import os

from metaflow import FlowSpec, conda, step

NUMPY = os.environ.get("NUMPY_VERSION", "1.26.4")


class DynamicFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @conda(
        packages={
            "numpy": NUMPY,  # expect-error
        }
    )
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass
