"""@pypi on one step without a base: python falls back to @conda's, then the default."""
from metaflow import FlowSpec, conda, pypi, step


class PypiStepOnlyFlow(FlowSpec):
    @conda(python="3.11.9")
    @pypi(packages={"httpx": "0.27.0"})
    @step
    def start(self):
        self.next(self.end)

    @pypi(packages={"httpx": "0.27.0"})
    @step
    def end(self):
        pass
