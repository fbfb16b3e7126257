from metaflow import FlowSpec, conda, step


class BadPythonFlow(FlowSpec):
    @conda(python="three")  # expect-error
    @step
    def start(self):
        pass
