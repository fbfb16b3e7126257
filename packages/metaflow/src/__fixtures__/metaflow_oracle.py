"""Test helper: what real Metaflow computes for each step's env (get_environment), without micromamba.

Usage: PYTHONPATH=<metaflow source> python3 metaflow_oracle.py <flow.py> <FlowClass>
Prints one line `ENVS=<json>`: step -> {conda, pypi, ...} | {} when disabled | {"error": message}.
"""
import json
import os
import runpy
import sys

flow_file, flow_class = sys.argv[1], sys.argv[2]

from metaflow.plugins.pypi import conda_environment  # noqa: E402


def validate_environment(self, logger, datastore_type):
    from metaflow.plugins import DATASTORES

    self.datastore_type = datastore_type
    self.datastore = [d for d in DATASTORES if d.TYPE == datastore_type][0]
    self.logger = logger


def init_environment(self, echo, only_steps=None):
    out = {}
    for step in self.flow:
        try:
            env = self.get_environment(step)
        except Exception as error:  # Metaflow's own refusal, e.g. mixing conda and PyPI
            out[step.name] = {"error": str(error)}
            continue
        out[step.name] = {k: v for k, v in env.items() if k != "id_"}
    sys.stdout.write("ENVS=" + json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)


conda_environment.CondaEnvironment.validate_environment = validate_environment
conda_environment.CondaEnvironment.init_environment = init_environment
sys.argv = [flow_file, "--no-pylint", "--environment=conda", "run"]
# As for `python flow.py`: the flow file's directory first on sys.path (its own modules import from there).
sys.path.insert(0, os.path.dirname(os.path.abspath(flow_file)))
namespace = runpy.run_path(flow_file, run_name="__prebuilt_oracle__")
namespace[flow_class]()
