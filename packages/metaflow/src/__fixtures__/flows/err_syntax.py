from metaflow import FlowSpec, step


class BrokenFlow(FlowSpec):
    @step
    def start(self)  # expect-error
        self.next(self.end)
