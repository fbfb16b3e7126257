from metaflow import FlowSpec, conda_base, pypi, step


@conda_base(packages={"numpy": "1.26.4"})  # expect-error
class MixedBaseFlow(FlowSpec):
    @pypi(python="3.11")
    @step
    def start(self):
        # @pypi with no packages of its own still gets Metaflow's pins, so conda packages conflict.
        self.next(self.end)

    @step
    def end(self):
        pass
