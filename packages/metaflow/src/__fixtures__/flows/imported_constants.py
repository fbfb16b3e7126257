# Decorator arguments from constants of the flow's own modules: from-imports, `import x as y` + y.X,
# a package's re-exports and its relative imports.
import team_settings as cfg
from metaflow import FlowSpec, conda, conda_base, step
from team_settings import PYTHON, TORCH
from teamconf import PANDAS_VERSION, SCIENCE


@conda_base(python=PYTHON, packages=SCIENCE)
class ImportedConstantsFlow(FlowSpec):
    @conda(packages=TORCH)
    @step
    def start(self):
        self.next(self.train)

    @conda(packages={**SCIENCE, "pandas": PANDAS_VERSION}, python="3.12")
    @step
    def train(self):
        self.next(self.end)

    @conda(packages={**cfg.BASE, "pandas": PANDAS_VERSION}, python=cfg.PYTHON)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    ImportedConstantsFlow()
