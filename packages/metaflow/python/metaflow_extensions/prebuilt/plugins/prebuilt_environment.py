"""`--environment=prebuilt`: remote steps run on the images `prebuilt build` baked.

For every step that runs remotely (a static @kubernetes/@batch, `--with kubernetes|batch`,
METAFLOW_DEFAULT_DECOSPECS, or a scheduler such as Argo Workflows attaching @kubernetes) and has
an environment, the image map (METAFLOW_PREBUILT_IMAGE_MAP) gives the image and the interpreter:
the remote decorator's `image` and pull settings are set, the task calls that interpreter, and
neither the conda/pypi bootstrap nor the pip install of boto3/requests runs at task start.

Everything else is Metaflow's CondaEnvironment, unchanged: local steps, disabled steps, and any
step when there is no image map (inside a task container, for instance).

Without METAFLOW_PREBUILT_IMAGE_MAP (`python flow.py --environment=prebuilt ...` after
`prebuilt metaflow install`), the environment asks the prebuilt CLI to build the images of the
remote steps and reads back the map it wrote.
"""

import inspect
import json
import os
import re
import subprocess
import sys

from metaflow.exception import MetaflowException
from metaflow.plugins.pypi.conda_environment import CondaEnvironment

from .prebuilt_image_map import (
    IMAGE_MAP_ENV,
    REMOTE_DECORATORS,
    ImageMapError,
    batch_repository_credentials,
    check_flow,
    find_cli,
    load_image_map,
    packages_difference,
    pull_secrets,
    step_image,
)

SKIP_INSTALL_EXPORT = "export METAFLOW_SKIP_INSTALL_DEPENDENCIES=1"

# A flow file name a remote task's command carries as it is: Metaflow writes the base name of
# sys.argv[0] unquoted into the shell command of every remote task (`python <name> ... step ...`),
# so a space, a quote, `$`, `;`, a parenthesis or a leading `-` breaks every task. The CLI's
# checkRemoteFlowFileName says the same.
TASK_COMMAND_WORD = re.compile(r"^[\w.+@%,:=][\w.+@%,:=-]*$")


class PrebuiltException(MetaflowException):
    headline = "prebuilt"


def remote_decorator(step):
    """The step's @kubernetes or @batch (static or attached), or None."""
    for deco in step.decorators:
        if deco.name in REMOTE_DECORATORS:
            return deco
    return None


def asks_for_gpu(deco):
    """The remote decorator asks for at least one GPU (its `gpu` after Metaflow's step_init)."""
    value = deco.attributes.get("gpu") if deco is not None else None
    try:
        return float(value or 0) > 0
    except (TypeError, ValueError):
        return False


def env_disabled(step):
    """A step is disabled when its @conda or its @pypi is (Metaflow then gives it no environment)."""
    for deco in step.decorators:
        if deco.name in ("conda", "pypi"):
            disabled = deco.attributes.get("disabled")
            if disabled and str(disabled).lower() != "false":
                return True
    return False


class PrebuiltEnvironment(CondaEnvironment):
    TYPE = "prebuilt"

    def __init__(self, flow):
        super().__init__(flow)
        self._loaded_path = None
        self._loaded_map = None
        self._warned_batch_credentials = False

    # -- the image map ---------------------------------------------------------------------

    def _flow_file(self):
        try:
            return os.path.relpath(inspect.getfile(self.flow.__class__))
        except (TypeError, ValueError):
            return "<flow.py>"

    def image_map(self):
        """The image map (checked), or None when METAFLOW_PREBUILT_IMAGE_MAP is not set."""
        path = os.environ.get(IMAGE_MAP_ENV)
        if not path:
            return None
        if self._loaded_path != path:
            try:
                image_map = load_image_map(path)
                check_flow(image_map, path, self.flow.name, self._flow_file())
            except ImageMapError as e:
                raise PrebuiltException(str(e))
            self._loaded_path, self._loaded_map = path, image_map
        return self._loaded_map

    def _step(self, step_name):
        return next((s for s in self.flow if s.name == step_name), None)

    def prebuilt_step(self, step_name):
        """The step's image (dict from the map) when it runs on a prebuilt image, else None."""
        image_map = self.image_map()
        if image_map is None:
            return None
        step = self._step(step_name)
        if step is None or remote_decorator(step) is None or env_disabled(step):
            return None
        try:
            return step_image(image_map, self._loaded_path, step_name, self._flow_file())
        except ImageMapError as e:
            raise PrebuiltException(str(e))

    def _remote_steps(self, only_steps=None):
        return [
            s.name
            for s in self.flow
            if (not only_steps or s.name in only_steps)
            and remote_decorator(s) is not None
            and not env_disabled(s)
        ]

    def _build_with_cli(self, echo, steps):
        """Runs `prebuilt metaflow build` for `steps`; points METAFLOW_PREBUILT_IMAGE_MAP at the map."""
        cli, source = find_cli()
        flow_file = inspect.getfile(self.flow.__class__)
        if cli is None:
            raise PrebuiltException(
                "--environment=prebuilt needs the prebuilt CLI to build the images of steps %s, "
                "but %s.\nRun `prebuilt metaflow install` again, set PREBUILT_CLI to the command "
                "(e.g. `npx prebuilt`), or run the flow through `prebuilt run %s ...`."
                % (", ".join(steps), source, os.path.relpath(flow_file))
            )
        command = cli + ["metaflow", "build", flow_file, "--steps", ",".join(steps), "--json"]
        # GPUs as Metaflow gave them to each step's @kubernetes/@batch (its own, @resources',
        # --with kubernetes:gpu=N): the CLI reads the flow file, which does not show a --with.
        gpu = [name for name in steps if asks_for_gpu(remote_decorator(self._step(name)))]
        if gpu:
            command[-1:-1] = ["--gpu-steps", ",".join(gpu)]
        # The datastore this run uses (--datastore, else METAFLOW_DEFAULT_DATASTORE): Metaflow pins its
        # packages (boto3 for s3) into every env, and the task in the image needs them.
        datastore = getattr(self, "datastore_type", None)
        if datastore:
            command[-1:-1] = ["--datastore", datastore]
        echo("Building the prebuilt images of steps %s (%s) ..." % (", ".join(steps), source))
        try:
            # The CLI shows its progress on stderr (inherited); stdout is one JSON object.
            done = subprocess.run(command, stdout=subprocess.PIPE, check=False)
        except OSError as e:
            raise PrebuiltException(
                "Could not run the prebuilt CLI %s (from %s): %s.\nSet PREBUILT_CLI to a working "
                "command, or run `prebuilt metaflow install` again." % (" ".join(cli), source, e)
            )
        if done.returncode != 0:
            raise PrebuiltException(
                "`prebuilt metaflow build` failed (exit %d): see its messages above. No step was "
                "deployed." % done.returncode
            )
        try:
            result = json.loads(done.stdout.decode("utf-8"))
            state_file = result["stateFile"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise PrebuiltException(
                "`prebuilt metaflow build` printed no image map location; is %s a prebuilt CLI?"
                % " ".join(cli)
            )
        # Inherited by the processes Metaflow starts (e.g. `kubernetes step` of a local run).
        os.environ[IMAGE_MAP_ENV] = state_file

    # -- Metaflow's environment hooks -------------------------------------------------------

    def _check_flow_file_name(self, only_steps):
        if not any(
            remote_decorator(s) is not None for s in self.flow if not only_steps or s.name in only_steps
        ):
            return
        name = os.path.basename(sys.argv[0])
        if TASK_COMMAND_WORD.match(name):
            return
        suggestion = re.sub(r"[^\w.+@%,:=-]", "_", name).lstrip("-") or "flow.py"
        raise PrebuiltException(
            "Metaflow cannot run %s remotely: it writes the flow file's name unquoted into the shell "
            "command of every remote task (python %s ... step ...), so every task would fail to "
            "start.\nRename the flow file to letters, digits and . _ - (for example %s)."
            % (json.dumps(name), name, suggestion)
        )

    def init_environment(self, echo, only_steps=None):
        self._check_flow_file_name(only_steps)
        remote = self._remote_steps(only_steps)
        if remote and not os.environ.get(IMAGE_MAP_ENV):
            self._build_with_cli(echo, remote)
        prebuilt = set()
        if self.image_map() is not None:
            for name in remote:
                image = self.prebuilt_step(name)
                self._check_packages(self._step(name), image)
                self._apply_image(echo, self._step(name), image)
                prebuilt.add(name)
        # Every other step gets what Metaflow's conda environment gives it.
        rest = [
            s.name
            for s in self.flow
            if s.name not in prebuilt
            and (not only_steps or s.name in only_steps)
            and not env_disabled(s)
        ]
        if rest:
            super().init_environment(echo, only_steps=rest)

    def _check_packages(self, step, image):
        """Refuses a step whose image was built for other packages than Metaflow asks for now
        (get_environment: the step's own, its flow's bases, Metaflow's pins for this datastore): the
        task would start without them, as the install at task start is skipped. A map written
        without the packages is not checked."""
        built = image.get("packages")
        if built is None:
            return
        environment = self.get_environment(step)
        wanted = {
            kind: {str(name): str(spec) for name, spec in environment.get(kind, {}).get("packages", {}).items()}
            for kind in ("conda", "pypi")
        }
        differences = packages_difference(built, wanted)
        if not differences:
            return
        flow_file = self._flow_file()
        raise PrebuiltException(
            "Step '%s' would run on an image built for other packages than Metaflow asks for:\n  %s\n"
            "The image map was built from %s as prebuilt reads it; a --with pypi:... or conda:... (on "
            "the command line or in METAFLOW_DEFAULT_DECOSPECS), another --datastore, or a Metaflow "
            "extension that adds packages changes what Metaflow asks for, and the task would start "
            "without it.\nPut the packages in the flow file (@pypi/@conda, or @pypi_base/@conda_base), "
            "then run `prebuilt build %s` again, or run the flow through `prebuilt run %s ...`, which "
            "builds for the command line's --datastore."
            % (step.name, "\n  ".join(differences), flow_file, flow_file, flow_file)
        )

    def _apply_image(self, echo, step, image):
        deco = remote_decorator(step)
        deco.attributes["image"] = image["image"]
        if deco.name == "kubernetes":
            secrets = pull_secrets(image["pullConfig"])
            if secrets:
                current = deco.attributes.get("image_pull_secrets") or []
                if isinstance(current, str):
                    current = json.loads(current)
                deco.attributes["image_pull_secrets"] = list(current) + [
                    s for s in secrets if s not in current
                ]
        elif deco.name == "batch":
            credentials = batch_repository_credentials(image["pullConfig"])
            if credentials and not self._warned_batch_credentials:
                self._warned_batch_credentials = True
                echo(
                    "Warning: @batch has no repository credentials setting in this Metaflow; "
                    "the job's execution role must be able to pull %s (credentials %s are not "
                    "applied)." % (image["image"], credentials)
                )

    def executable(self, step_name, default=None):
        image = self.prebuilt_step(step_name)
        if image is not None:
            return image["python"]
        return super().executable(step_name, default)

    def bootstrap_commands(self, step_name, datastore_type):
        if self.prebuilt_step(step_name) is not None:
            # The environment is in the image: nothing to download, create or install.
            return []
        return super().bootstrap_commands(step_name, datastore_type)

    def get_package_commands(self, code_package_url, datastore_type, code_package_metadata=None):
        commands = super().get_package_commands(
            code_package_url, datastore_type, code_package_metadata
        )
        # The package commands are the same for every step of a deployment, so the pip install
        # of boto3/requests is skipped only when every remote step runs on a prebuilt image
        # (whose env has them). A disabled remote step keeps Metaflow's install.
        remote = [s for s in self.flow if remote_decorator(s) is not None]
        if (
            remote
            and self.image_map() is not None
            and all(self.prebuilt_step(s.name) is not None for s in remote)
        ):
            return [SKIP_INSTALL_EXPORT] + commands
        return commands
