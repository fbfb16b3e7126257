from metaflow import FlowSpec, kubernetes, step


def gpus():
    return 1


class DynamicGpuFlow(FlowSpec):
    @kubernetes(gpu=gpus())  # expect-error
    @step
    def start(self):
        pass
