from metaflow import FlowSpec, conda, step


class UnknownArgFlow(FlowSpec):
    @conda(packages={"numpy": "1.26.4"}, channels=["bioconda"])  # expect-error
    @step
    def start(self):
        pass
