"""Unit tests of the prebuilt environment and decorators against real Metaflow.

Needs Metaflow importable (e.g. PYTHONPATH=<metaflow source>:packages/metaflow/python); every test
here is skipped, saying so, when it is not.
"""

import json
import os
import sys
import tempfile
import unittest
from unittest import mock

_tmp = tempfile.mkdtemp(prefix="prebuilt-ext-test-")
# Metaflow reads its config at import: keep its local datastore out of the working directory.
os.environ.setdefault("METAFLOW_DATASTORE_SYSROOT_LOCAL", os.path.join(_tmp, ".metaflow"))
os.environ.setdefault("METAFLOW_DATASTORE_SYSROOT_S3", "s3://prebuilt-test/metaflow")
os.environ.setdefault("USERNAME", "prebuilt-test")
os.environ.pop("METAFLOW_PREBUILT_IMAGE_MAP", None)

try:
    import metaflow  # noqa: F401
    from metaflow.plugins.pypi.conda_environment import CondaEnvironment

    MISSING = None
except ImportError as e:  # pragma: no cover - depends on the machine
    MISSING = "Metaflow is not importable (%s): put a Metaflow source checkout on PYTHONPATH" % e

needs_metaflow = unittest.skipIf(MISSING is not None, MISSING or "")

ENV = "0123456789abcdef"
PY = "/opt/prebuilt/envs/%s/bin/python" % ENV
IMAGE = "127.0.0.1:5000/metaflow-prebuilt:v1-%s" % ENV
PINNED = IMAGE + "@sha256:" + "0" * 64


class Deco(object):
    def __init__(self, name, **attributes):
        self.name = name
        self.attributes = attributes


class Step(object):
    def __init__(self, name, *decorators):
        self.name = name
        self.decorators = list(decorators)


class Flow(object):
    """What the environment uses of a FlowSpec: a name and iteration over steps."""

    def __init__(self, name, *steps):
        self.name = name
        self._steps = list(steps)

    def __iter__(self):
        return iter(self._steps)


def conda(disabled=False, packages=None):
    return Deco("conda", packages=packages or {}, libraries={}, python="3.11.9", disabled=disabled)


def image_map(flow="HelloFlow", steps=None, pull=None):
    steps = steps if steps is not None else ["train"]
    return {
        "flow": flow,
        "images": {
            ENV: {
                "image": IMAGE,
                "digest": "sha256:" + "0" * 64,
                "python": PY,
                "status": "built",
                "steps": steps,
                "pullConfig": pull if pull is not None else {"kubernetes": {"imagePullSecrets": ["regcred"]}},
            }
        },
        "steps": dict(
            {s: {"envId": ENV, "image": IMAGE, "python": PY} for s in steps},
            end={"envId": None, "image": "base", "python": "python"},
        ),
    }


@needs_metaflow
class PluginRegistrationTest(unittest.TestCase):
    def test_metaflow_loads_the_environment_and_the_decorators(self):
        from metaflow.plugins import ENVIRONMENTS, FLOW_DECORATORS, STEP_DECORATORS

        from metaflow_extensions.prebuilt.plugins.prebuilt_decorators import (
            PrebuiltCondaFlowDecorator,
            PrebuiltCondaStepDecorator,
            PrebuiltPyPIFlowDecorator,
            PrebuiltPyPIStepDecorator,
        )
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltEnvironment

        self.assertIn(PrebuiltEnvironment, ENVIRONMENTS)
        self.assertIn("conda", [e.TYPE for e in ENVIRONMENTS])  # stock stays
        steps = {d.name: d for d in STEP_DECORATORS}
        flows = {d.name: d for d in FLOW_DECORATORS}
        self.assertIs(steps["conda"], PrebuiltCondaStepDecorator)
        self.assertIs(steps["pypi"], PrebuiltPyPIStepDecorator)
        self.assertIs(flows["conda_base"], PrebuiltCondaFlowDecorator)
        self.assertIs(flows["pypi_base"], PrebuiltPyPIFlowDecorator)


@needs_metaflow
class DecoratorTypeCheckTest(unittest.TestCase):
    def test_prebuilt_is_presented_as_conda_only_during_the_check(self):
        from metaflow_extensions.prebuilt.plugins.prebuilt_decorators import accepted_as_conda
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltEnvironment

        env = PrebuiltEnvironment(Flow("F"))
        with accepted_as_conda(env):
            self.assertEqual(env.TYPE, "conda")
            with accepted_as_conda(env):  # nested (flow_init → late-attached step_init)
                self.assertEqual(env.TYPE, "conda")
            self.assertEqual(env.TYPE, "conda")
        self.assertEqual(env.TYPE, "prebuilt")
        self.assertNotIn("TYPE", vars(env))

    def test_other_environments_are_untouched(self):
        from metaflow.metaflow_environment import MetaflowEnvironment

        from metaflow_extensions.prebuilt.plugins.prebuilt_decorators import accepted_as_conda

        env = MetaflowEnvironment(None)
        with accepted_as_conda(env):
            self.assertEqual(env.TYPE, "local")

    def test_stock_check_still_refuses_other_environments(self):
        from metaflow.metaflow_environment import InvalidEnvironmentException, MetaflowEnvironment

        from metaflow_extensions.prebuilt.plugins.prebuilt_decorators import PrebuiltCondaStepDecorator

        deco = PrebuiltCondaStepDecorator(attributes={"packages": {}}, statically_defined=True)
        deco.init()
        flow = mock.Mock(_flow_decorators={})
        with self.assertRaises(InvalidEnvironmentException):
            deco.step_init(flow, None, "start", [], MetaflowEnvironment(None), None, print)


@needs_metaflow
class WithoutImageMapTest(unittest.TestCase):
    """No METAFLOW_PREBUILT_IMAGE_MAP and no remote step: exactly Metaflow's conda environment."""

    def setUp(self):
        os.environ.pop("METAFLOW_PREBUILT_IMAGE_MAP", None)

    def envs(self, flow):
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltEnvironment

        stock, prebuilt = CondaEnvironment(flow), PrebuiltEnvironment(flow)
        for env in (stock, prebuilt):
            env.validate_environment(lambda *a, **k: None, "local")
        return stock, prebuilt

    def test_same_executable_bootstrap_and_package_commands_as_stock(self):
        flow = Flow("F", Step("start", conda(packages={"numpy": "1.26.4"})), Step("end", conda(disabled=True)))
        stock, prebuilt = self.envs(flow)
        for name in ("start", "end", "_parameters"):
            self.assertEqual(prebuilt.executable(name), stock.executable(name))
        for name in ("start", "end"):
            self.assertEqual(prebuilt.bootstrap_commands(name, "s3"), stock.bootstrap_commands(name, "s3"))
        self.assertEqual(
            prebuilt.get_package_commands("s3://b/p", "s3"), stock.get_package_commands("s3://b/p", "s3")
        )
        self.assertIn("bin/python -s", prebuilt.executable("start"))  # the stock conda env's interpreter
        self.assertTrue(any("metaflow.plugins.pypi.bootstrap" in c for c in prebuilt.bootstrap_commands("start", "s3")))
        self.assertEqual(prebuilt.decospecs(), stock.decospecs())

    def test_init_environment_is_stocks(self):
        flow = Flow("F", Step("start", conda()), Step("end", conda(disabled=True)))
        _, prebuilt = self.envs(flow)
        with mock.patch.object(CondaEnvironment, "init_environment") as stock_init:
            prebuilt.init_environment(print)
        stock_init.assert_called_once_with(print, only_steps=["start"])


@needs_metaflow
class WithImageMapTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        # What Metaflow names the flow file by in task commands (unittest's own is "python -m unittest").
        argv = mock.patch.object(sys, "argv", ["/flows/hello.py", "argo-workflows", "create"])
        argv.start()
        self.addCleanup(argv.stop)
        self.addCleanup(os.environ.pop, "METAFLOW_PREBUILT_IMAGE_MAP", None)
        self.messages = []

    def echo(self, message, **kwargs):
        self.messages.append(message)

    def use_map(self, data):
        path = os.path.join(self.dir.name, "images.json")
        with open(path, "w") as f:
            json.dump(data, f)
        os.environ["METAFLOW_PREBUILT_IMAGE_MAP"] = path
        return path

    def env(self, flow):
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltEnvironment

        env = PrebuiltEnvironment(flow)
        env.validate_environment(lambda *a, **k: None, "s3")
        return env

    def flow(self, remote="kubernetes", **attributes):
        self.k8s = Deco(remote, image="python:3.11", image_pull_secrets=["existing"], **attributes)
        return Flow(
            "HelloFlow",
            Step("start", conda()),  # local
            Step("train", conda(packages={"numpy": "1.26.4"}), self.k8s),  # remote
            Step("end", conda(disabled=True), Deco(remote, image="python:3.11")),  # remote, disabled
        )

    def test_remote_steps_get_their_image_pull_secrets_and_interpreter(self):
        self.use_map(image_map())
        env = self.env(self.flow())
        with mock.patch.object(CondaEnvironment, "init_environment") as stock_init:
            env.init_environment(self.echo)
        # Only the local step goes through Metaflow's conda environment.
        stock_init.assert_called_once_with(self.echo, only_steps=["start"])
        self.assertEqual(self.k8s.attributes["image"], PINNED)
        self.assertEqual(self.k8s.attributes["image_pull_secrets"], ["existing", "regcred"])
        self.assertEqual(env.executable("train"), PY)
        self.assertEqual(env.bootstrap_commands("train", "s3"), [])

    def test_a_step_whose_image_was_built_for_other_packages_than_metaflow_asks_for_is_refused(self):
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltException

        data = image_map()
        # What Metaflow asks for train on s3: its own numpy over the pins (requests, boto3 for s3).
        data["steps"]["train"]["packages"] = {"conda": {"requests": ">=2.21.0", "boto3": ">=1.14.0", "numpy": "1.26.4"}, "pypi": {}}
        self.use_map(data)
        with mock.patch.object(CondaEnvironment, "init_environment"):
            self.env(self.flow()).init_environment(self.echo)
        self.assertEqual(self.k8s.attributes["image"], PINNED)

        # Built for the local datastore (no boto3) and without the @pypi a `--with pypi:...` attaches.
        data["steps"]["train"]["packages"] = {"conda": {"requests": ">=2.21.0"}, "pypi": {}}
        self.use_map(data)
        flow = self.flow()
        train = list(flow)[1]
        train.decorators[0] = conda()
        train.decorators.append(Deco("pypi", packages={"pandas": "2.2.2"}, python=None, disabled=False))
        with mock.patch.object(CondaEnvironment, "init_environment") as stock_init:
            with self.assertRaises(PrebuiltException) as caught:
                self.env(flow).init_environment(self.echo)
        message = str(caught.exception)
        self.assertIn("Step 'train' would run on an image built for other packages than Metaflow asks for:\n", message)
        # With @pypi, Metaflow puts its pins on the PyPI side.
        self.assertIn("  pypi boto3: Metaflow asks for >=1.14.0, the image has none\n", message)
        self.assertIn("  pypi pandas: Metaflow asks for 2.2.2, the image has none\n", message)
        self.assertIn("  pypi requests: Metaflow asks for >=2.21.0, the image has none\n", message)
        self.assertIn("  conda requests: Metaflow asks for none, the image has >=2.21.0\n", message)
        self.assertIn("Put the packages in the flow file (@pypi/@conda, or @pypi_base/@conda_base), then run `prebuilt build ", message)
        self.assertEqual(self.k8s.attributes["image"], "python:3.11")  # not deployed onto the image
        stock_init.assert_not_called()

    def test_local_and_disabled_steps_stay_stock(self):
        self.use_map(image_map())
        flow = self.flow()
        env = self.env(flow)
        stock = CondaEnvironment(flow)
        stock.validate_environment(lambda *a, **k: None, "s3")
        for name in ("start", "end"):
            self.assertEqual(env.executable(name), stock.executable(name))
            self.assertEqual(env.bootstrap_commands(name, "s3"), stock.bootstrap_commands(name, "s3"))
        end_deco = list(flow)[2].decorators[1]
        with mock.patch.object(CondaEnvironment, "init_environment"):
            env.init_environment(self.echo)
        self.assertEqual(end_deco.attributes["image"], "python:3.11")

    def test_pip_install_is_skipped_only_when_every_remote_step_is_prebuilt(self):
        self.use_map(image_map())
        with_disabled_remote = self.env(self.flow())
        commands = with_disabled_remote.get_package_commands("s3://b/p", "s3")
        self.assertNotIn("export METAFLOW_SKIP_INSTALL_DEPENDENCIES=1", commands)
        all_prebuilt = self.env(
            Flow("HelloFlow", Step("start", conda()), Step("train", conda(), Deco("kubernetes", image=None)))
        )
        commands = all_prebuilt.get_package_commands("s3://b/p", "s3")
        self.assertEqual(commands[0], "export METAFLOW_SKIP_INSTALL_DEPENDENCIES=1")
        self.assertEqual(commands[1:], CondaEnvironment.get_package_commands(all_prebuilt, "s3://b/p", "s3"))

    def test_a_remote_step_missing_from_the_map_is_a_clear_error(self):
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltException

        self.use_map(image_map(steps=["other"]))
        env = self.env(self.flow())
        with self.assertRaises(PrebuiltException) as caught:
            with mock.patch.object(CondaEnvironment, "init_environment"):
                env.init_environment(self.echo)
        self.assertIn("Step 'train'", str(caught.exception))
        self.assertIn("prebuilt build", str(caught.exception))

    def test_a_map_of_another_flow_is_refused(self):
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltException

        self.use_map(image_map(flow="OtherFlow"))
        env = self.env(self.flow())
        with self.assertRaises(PrebuiltException) as caught:
            env.executable("train")
        self.assertIn("is for flow OtherFlow, not HelloFlow", str(caught.exception))

    def test_batch_gets_the_image_and_a_warning_about_credentials(self):
        self.use_map(
            image_map(pull={"batch": {"repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:x"}}})
        )
        env = self.env(self.flow(remote="batch"))
        with mock.patch.object(CondaEnvironment, "init_environment"):
            env.init_environment(self.echo)
        self.assertEqual(self.k8s.attributes["image"], PINNED)
        self.assertEqual(self.k8s.attributes["image_pull_secrets"], ["existing"])  # not a batch setting
        self.assertTrue(any("arn:aws:secretsmanager:x" in m for m in self.messages))
        self.assertEqual(env.executable("train"), PY)


@needs_metaflow
class BuildThroughCliTest(unittest.TestCase):
    """Installed mode: no image map given, so the environment asks the prebuilt CLI to build."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.addCleanup(os.environ.pop, "METAFLOW_PREBUILT_IMAGE_MAP", None)
        self.addCleanup(os.environ.pop, "PREBUILT_CLI", None)
        argv = mock.patch.object(sys, "argv", ["/flows/hello.py", "argo-workflows", "create"])
        argv.start()
        self.addCleanup(argv.stop)
        os.environ.pop("METAFLOW_PREBUILT_IMAGE_MAP", None)
        self.map_path = os.path.join(self.dir.name, "images.json")
        with open(self.map_path, "w") as f:
            json.dump(image_map(), f)
        self.calls = os.path.join(self.dir.name, "calls.json")
        self.cli = os.path.join(self.dir.name, "fake_cli.py")

    def write_cli(self, code):
        with open(self.cli, "w") as f:
            f.write(
                "import json, sys\n"
                "json.dump(sys.argv[1:], open(%r, 'w'))\n"
                "if %d == 0: print(json.dumps({'ok': True, 'stateFile': %r}))\n"
                "sys.exit(%d)\n" % (self.calls, code, self.map_path, code)
            )
        os.environ["PREBUILT_CLI"] = "%s %s" % (sys.executable, self.cli)

    def env(self):
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltEnvironment

        self.k8s = Deco("kubernetes", image=None, image_pull_secrets=None)
        flow = Flow("HelloFlow", Step("start", conda(disabled=True)), Step("train", conda(), self.k8s))
        env = PrebuiltEnvironment(flow)
        env.validate_environment(lambda *a, **k: None, "s3")
        return env

    def test_builds_the_remote_steps_and_reads_back_the_map(self):
        self.write_cli(0)
        env = self.env()
        with mock.patch("inspect.getfile", return_value="/flows/hello.py"):
            env.init_environment(lambda *a, **k: None)
        with open(self.calls) as f:
            args = json.load(f)
        self.assertEqual(args, ["metaflow", "build", "/flows/hello.py", "--steps", "train", "--datastore", "s3", "--json"])
        self.assertEqual(os.environ["METAFLOW_PREBUILT_IMAGE_MAP"], self.map_path)
        self.assertEqual(self.k8s.attributes["image"], PINNED)
        self.assertEqual(self.k8s.attributes["image_pull_secrets"], ["regcred"])

    def test_a_failed_build_stops_the_deploy(self):
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltException

        self.write_cli(1)
        env = self.env()
        with mock.patch("inspect.getfile", return_value="/flows/hello.py"):
            with self.assertRaises(PrebuiltException) as caught:
                env.init_environment(lambda *a, **k: None)
        self.assertIn("failed (exit 1)", str(caught.exception))
        self.assertNotIn("METAFLOW_PREBUILT_IMAGE_MAP", os.environ)

    def test_the_steps_metaflow_gives_gpus_are_named_to_the_cli(self):
        self.write_cli(0)
        env = self.env()
        # What @kubernetes holds after Metaflow's step_init with --with kubernetes:gpu=1 or @resources(gpu=1).
        self.k8s.attributes["gpu"] = "1"
        with mock.patch("inspect.getfile", return_value="/flows/hello.py"):
            env.init_environment(lambda *a, **k: None)
        with open(self.calls) as f:
            args = json.load(f)
        self.assertEqual(args, ["metaflow", "build", "/flows/hello.py", "--steps", "train", "--gpu-steps", "train", "--datastore", "s3", "--json"])

    def test_a_flow_file_name_a_task_command_cannot_carry_is_refused_before_the_build(self):
        from metaflow_extensions.prebuilt.plugins.prebuilt_environment import PrebuiltException

        self.write_cli(0)
        env = self.env()
        for name, suggestion in (("my flow.py", "my_flow.py"), ("it's.py", "it_s.py"), ("-x.py", "x.py"), ("$x.py", "_x.py")):
            with mock.patch.object(sys, "argv", ["/flows/" + name, "argo-workflows", "create"]):
                with mock.patch("inspect.getfile", return_value="/flows/" + name):
                    with self.assertRaises(PrebuiltException) as caught:
                        env.init_environment(lambda *a, **k: None)
            message = str(caught.exception)
            self.assertIn("Metaflow cannot run %s remotely" % json.dumps(name), message)
            self.assertIn("(python %s ... step ...)" % name, message)
            self.assertIn("(for example %s)" % suggestion, message)
        self.assertFalse(os.path.exists(self.calls))  # the CLI was never asked to build
        self.assertNotIn("METAFLOW_PREBUILT_IMAGE_MAP", os.environ)
        # A name with letters, digits and . _ - + @ % , : = (any language's letters) goes ahead.
        with mock.patch.object(sys, "argv", ["/a b/flöw-v2.1+x.py"]):
            with mock.patch("inspect.getfile", return_value="/a b/flöw-v2.1+x.py"):
                env.init_environment(lambda *a, **k: None)
        self.assertTrue(os.path.exists(self.calls))

    def test_no_cli_is_a_clear_error(self):
        from metaflow_extensions.prebuilt.plugins import prebuilt_environment

        env = self.env()
        with mock.patch.object(prebuilt_environment, "find_cli", return_value=(None, "nothing found")):
            with mock.patch("inspect.getfile", return_value="/flows/hello.py"):
                with self.assertRaises(prebuilt_environment.PrebuiltException) as caught:
                    env.init_environment(lambda *a, **k: None)
        self.assertIn("needs the prebuilt CLI", str(caught.exception))
        self.assertIn("prebuilt metaflow install", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
