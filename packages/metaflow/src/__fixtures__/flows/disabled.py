from metaflow import FlowSpec, conda, conda_base, step


@conda_base(packages={"numpy": "1.26.4"}, disabled=True)
class DisabledFlow(FlowSpec):
    @step
    def start(self):
        # Disabled by the base.
        self.next(self.enabled)

    @conda(disabled=False, packages={"pandas": "2.2.2"})
    @step
    def enabled(self):
        # The step's disabled=False wins over the base's True.
        self.next(self.end)

    @conda(disabled=None)
    @step
    def end(self):
        # None falls back to the base's True.
        pass


if __name__ == "__main__":
    DisabledFlow()
