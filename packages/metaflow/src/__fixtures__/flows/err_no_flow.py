from metaflow import step


class NotAFlow:
    @step
    def start(self):
        pass
