from metaflow import pypi, step


class SharedSteps:
    @pypi(packages={"pyarrow": "16.1.0"})
    @step
    def start(self):
        self.next(self.train)

    @step
    def end(self):
        pass


class OtherSteps:
    @pypi(packages={"pyarrow": "15.0.0"}, python="3.12")
    @step
    def start(self):
        self.next(self.train)
