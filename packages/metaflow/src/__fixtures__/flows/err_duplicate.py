from metaflow import FlowSpec, conda, step


class DuplicateFlow(FlowSpec):
    @conda(packages={"numpy": "1.26.4"})
    @conda(packages={"pandas": "2.2.2"})  # expect-error
    @step
    def start(self):
        pass
