from metaflow import FlowSpec as FS
from metaflow import batch as aws_batch
from metaflow import conda as env
from metaflow import conda_base as env_base
from metaflow import step as s


def conda(**kwargs):
    """A local function named like Metaflow's decorator: not Metaflow's, so ignored."""
    return lambda f: f


@env_base(python="3.11")
class AliasesFlow(FS):
    @env(packages={"polars": "1.0.0"})
    @aws_batch(gpu=1)
    @s
    def start(self):
        self.next(self.end)

    @conda(packages={"never": "read"})
    @s
    def end(self):
        pass
