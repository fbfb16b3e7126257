from metaflow import FlowSpec, conda, conda_base, step


@conda_base(python="3.11", packages={"numpy": "1.26.4"})
class BaseFlow(FlowSpec):
    @conda(packages={"pandas": "2.2.2"})
    @step
    def start(self):
        self.next(self.end)


class ChildFlow(BaseFlow):
    @step
    def end(self):
        pass
