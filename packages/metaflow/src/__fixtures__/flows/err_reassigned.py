from metaflow import FlowSpec, conda, step

PACKAGES = {"numpy": "1.26.4"}
PACKAGES["pandas"] = "2.2.2"
for name in ["scipy"]:
    PACKAGES = {name: ""}


class ReassignedFlow(FlowSpec):
    @conda(packages=PACKAGES)  # expect-error
    @step
    def start(self):
        pass
