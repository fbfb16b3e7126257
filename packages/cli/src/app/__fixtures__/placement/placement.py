from metaflow import FlowSpec, kubernetes, resources, step


class PlacementFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.own)

    @kubernetes(node_selector={"pool": "cpu"})
    @step
    def own(self):
        self.next(self.pool)

    @kubernetes(compute_pool="a100", node_selector="team=ml", gpu=1, gpu_vendor="AMD")
    @step
    def pool(self):
        self.next(self.res)

    @resources(gpu=2)
    @step
    def res(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PlacementFlow()
