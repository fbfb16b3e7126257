from metaflow import FlowSpec, pypi, step


class BadPackagesFlow(FlowSpec):
    @pypi(packages=["numpy"])  # expect-error
    @step
    def start(self):
        pass
