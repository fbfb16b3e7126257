# The prebuilt Metaflow extension: `--environment=prebuilt` runs every remote step on the image
# `prebuilt build` baked for it (image map: METAFLOW_PREBUILT_IMAGE_MAP), with no bootstrap at
# task start. The four env decorators below replace Metaflow's own of the same name (an
# extension's plugin wins over the core one) only so that they accept the `prebuilt` environment
# type; under any other environment they are Metaflow's decorators, unchanged.

ENVIRONMENTS_DESC = [
    ("prebuilt", ".prebuilt_environment.PrebuiltEnvironment"),
]

STEP_DECORATORS_DESC = [
    ("conda", ".prebuilt_decorators.PrebuiltCondaStepDecorator"),
    ("pypi", ".prebuilt_decorators.PrebuiltPyPIStepDecorator"),
]

FLOW_DECORATORS_DESC = [
    ("conda_base", ".prebuilt_decorators.PrebuiltCondaFlowDecorator"),
    ("pypi_base", ".prebuilt_decorators.PrebuiltPyPIFlowDecorator"),
]
