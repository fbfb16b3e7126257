import metaflow
import metaflow as mf


@mf.conda_base(packages={"numpy": "1.26.4"})
class AttributeFormFlow(metaflow.FlowSpec):
    @metaflow.conda(packages={"pandas": "2.2.2"})
    @mf.kubernetes(gpu="1")
    @metaflow.step
    def start(self):
        self.next(self.end)

    @mf.step
    def end(self):
        pass


if __name__ == "__main__":
    AttributeFormFlow()
