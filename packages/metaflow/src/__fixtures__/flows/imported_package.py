# Several bases from a package: Python's MRO decides which `start` the flow has (OtherSteps' here).
import teampkg
from metaflow import pypi, step
from teampkg.mixins import OtherSteps


class ImportedPackageFlow(OtherSteps, teampkg.PypiTeamFlow):
    @pypi(packages={"polars": "1.0.0"})
    @step
    def train(self):
        self.next(self.end)


if __name__ == "__main__":
    ImportedPackageFlow()
