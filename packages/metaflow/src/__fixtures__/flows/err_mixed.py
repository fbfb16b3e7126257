from metaflow import FlowSpec, conda, pypi, step


class MixedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.both)

    @conda(packages={"numpy": "1.26.4"})  # expect-error
    @pypi(packages={"requests": "2.32.3"})
    @step
    def both(self):
        self.next(self.end)

    @step
    def end(self):
        pass
