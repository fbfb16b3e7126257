"""The README demo's flow: four steps, three distinct environments.

The packages (tinynum, tinyframe, tinycli, tinyhttp, …) are small test doubles served by the
repo's own example conda channel and PyPI index (packages/fixtures), so the demo runs offline.
"""
from metaflow import FlowSpec, conda, conda_base, kubernetes, pypi, step

NUMERIC = {"tinynum": "1.4.0"}


@conda_base(python="3.11")
class HelloFlow(FlowSpec):
    @kubernetes
    @conda(packages={**NUMERIC, "tinyframe": ""})
    @step
    def start(self):
        import tinyframe

        print("start: tinyframe", tinyframe.__version__)
        self.next(self.fetch)

    @kubernetes
    @pypi(packages={"tinyhttp": ""})
    @step
    def fetch(self):
        import tinyhttp

        print("fetch: tinyhttp", tinyhttp.__version__)
        self.next(self.report)

    @kubernetes
    @conda(packages={**NUMERIC, "tinyframe": ""})
    @step
    def report(self):
        self.next(self.end)

    @conda(packages={"tinycli": ""})
    @step
    def end(self):
        print("done")


if __name__ == "__main__":
    HelloFlow()
