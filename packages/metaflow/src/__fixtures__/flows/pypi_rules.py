"""@pypi_base attaches @pypi to every step; @pypi's python wins over @conda's."""
from metaflow import FlowSpec, conda, pypi, pypi_base, step


@pypi_base(python="3.10.14", packages={"requests": "2.32.3", "Scikit_Learn": ">=1.4"})
class PypiRulesFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.step_pypi)

    @pypi(packages={"requests": "2.31.0", "rich": ""}, python="3.12")
    @step
    def step_pypi(self):
        self.next(self.conda_python)

    @conda(python="3.9")
    @step
    def conda_python(self):
        # No conda packages, so no conflict; @pypi_base's python wins over @conda's.
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PypiRulesFlow()
