from metaflow import FlowSpec, conda, pypi, pypi_base, step


@pypi_base(packages={"requests": "2.32.3"})
class DisabledStepFlow(FlowSpec):
    @pypi(disabled=True)
    @step
    def start(self):
        self.next(self.conda_off)

    @conda(disabled="true")
    @step
    def conda_off(self):
        # Disabling the implicit @conda disables the env, even with @pypi_base.
        self.next(self.end)

    @step
    def end(self):
        pass
