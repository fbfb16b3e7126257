from metaflow import conda, step

from team_base import TeamFlow


class ImportedBaseFlow(TeamFlow):
    @conda(packages={"scipy": "1.13.0"}, python="3.12")
    @step
    def train(self):
        self.next(self.end)


if __name__ == "__main__":
    ImportedBaseFlow()
