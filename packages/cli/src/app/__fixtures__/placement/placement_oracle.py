"""Test helper: where real Metaflow places each step's Kubernetes pods, for a flow and a command line.

Usage: PYTHONPATH=<metaflow source> python3 placement_oracle.py <flow.py> <FlowClass> [--with SPEC]...
Runs `flow.py --no-pylint [--with SPEC]... run` through Metaflow's own CLI — decorators attached,
each @kubernetes' init and step_init run — and stops before any task starts. Prints one line
`PLACED=<json>`: step -> {node_selector, tolerations, gpu, gpu_vendor} of its @kubernetes after
step_init, or {"batch": true} for a step on @batch (a step without either is absent), or
`REFUSED=<message>` when Metaflow refuses the flow.
"""
import json
import os
import runpy
import sys

flow_file, flow_class, args = sys.argv[1], sys.argv[2], sys.argv[3:]

from metaflow.cli_components import run_cmds  # noqa: E402
from metaflow.plugins.aws.batch.batch_decorator import BatchDecorator  # noqa: E402
from metaflow.plugins.kubernetes.kubernetes_decorator import KubernetesDecorator  # noqa: E402

placed = {}
original_step_init = KubernetesDecorator.step_init
original_batch_step_init = BatchDecorator.step_init


def step_init(self, flow, graph, step, decos, environment, flow_datastore, logger):
    original_step_init(self, flow, graph, step, decos, environment, flow_datastore, logger)
    placed[step] = {k: self.attributes[k] for k in ("node_selector", "tolerations", "gpu", "gpu_vendor")}


def batch_step_init(self, flow, graph, step, decos, environment, flow_datastore, logger):
    original_batch_step_init(self, flow, graph, step, decos, environment, flow_datastore, logger)
    placed[step] = {"batch": True}


class Stop(object):
    """Stands in for NativeRuntime: every decorator was initialised, nothing runs."""

    def __init__(self, *args, **kwargs):
        sys.stdout.write("PLACED=" + json.dumps(placed) + "\n")
        sys.stdout.flush()
        os._exit(0)


def refused(message):
    sys.stdout.write("REFUSED=" + message + "\n")
    sys.stdout.flush()
    os._exit(0)


KubernetesDecorator.step_init = step_init
BatchDecorator.step_init = batch_step_init
run_cmds.NativeRuntime = Stop
sys.argv = [flow_file, "--no-pylint"] + args + ["run"]
sys.path.insert(0, os.path.dirname(os.path.abspath(flow_file)))
try:
    namespace = runpy.run_path(flow_file, run_name="__prebuilt_oracle__")
    namespace[flow_class]()
except SystemExit:
    refused("exited")
except Exception as error:  # Metaflow's own refusal, raised before its CLI prints it
    refused("%s: %s" % (type(error).__name__, error))
