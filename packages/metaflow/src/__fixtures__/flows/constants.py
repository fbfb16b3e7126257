"""Module-level constants and simple expressions."""
from metaflow import FlowSpec, conda, conda_base, kubernetes, step

PY_MAJOR = "3"
PYTHON = PY_MAJOR + ".11"
NUMPY = "1.26.4"
BASE = {"numpy": NUMPY, "pandas": "2.2.2"}
EXTRA = dict(**BASE, scipy="1.13.0")
TORCH_VERSION = "2.3"
GPUS = 1
LAYERS = [BASE, {"torch": f"{TORCH_VERSION}.*"}]


@conda_base(python=PYTHON, packages={**BASE, "click": ">=8"})
class ConstantsFlow(FlowSpec):
    LOCAL = {"pyarrow": "16.1.0"}

    @conda(packages={**BASE, "numpy": "2.0.0", **LOCAL})
    @step
    def start(self):
        self.next(self.train)

    @kubernetes(gpu=GPUS)
    @conda(packages=EXTRA | {"torch": "==" + TORCH_VERSION + ".1"}, python=f"{PY_MAJOR}.12")
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConstantsFlow()
