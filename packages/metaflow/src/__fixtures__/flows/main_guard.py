from metaflow import FlowSpec, conda, step


class HelperFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class RunThisFlow(FlowSpec):
    @conda(packages={"numpy": "1.26.4"})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RunThisFlow()
