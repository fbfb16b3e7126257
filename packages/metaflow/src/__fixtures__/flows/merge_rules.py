"""Merge rules: @conda_base under @conda, libraries alias, python and remote per step."""
from metaflow import FlowSpec, batch, conda, conda_base, kubernetes, step


@conda_base(python="3.11", packages={"numpy": "1.26.4", "pandas": "2.2.2"}, libraries={"scipy": "1.13.0", "numpy": "1.0"})
class MergeRulesFlow(FlowSpec):
    @step
    def start(self):
        # Only the base: libraries folded under packages, packages win.
        self.next(self.override)

    @conda(packages={"pandas": "2.1.0", "pyarrow": ""}, libraries={"pandas": "0.1", "click": "8.1.7"})
    @step
    def override(self):
        # Step packages overlay base packages; the step's libraries sit under its packages.
        self.next(self.newer_python)

    @kubernetes(gpu=2, image="ignored:tag")
    @conda(python="3.12.4")
    @step
    def newer_python(self):
        self.next(self.on_batch)

    @batch(cpu=2, gpu=0)
    @step
    def on_batch(self):
        self.next(self.end)

    @kubernetes
    @step
    def end(self):
        pass


if __name__ == "__main__":
    MergeRulesFlow()
